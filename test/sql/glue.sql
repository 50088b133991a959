--
-- AWS Glue sync: the Hive type parser, the glue_* server options and who
-- may call glue_sync (the TAP tests 050-059 talk to the Glue and Snowflake
-- emulators).  The parser is reached through the test surface
-- (sfexport_test.hive_to_snowflake).
--
CREATE EXTENSION sfexport;
CREATE EXTENSION sfexport_test;
\set VERBOSITY default

-- primitive types
SELECT t AS hive, sfexport_test.hive_to_snowflake(t) AS snowflake
  FROM unnest(ARRAY['string', 'STRING', 'varchar(10)', 'char(3)', 'tinyint',
                    'smallint', 'int', 'integer', 'bigint', 'float', 'double',
                    'double precision', 'decimal', 'decimal(12)', 'decimal(38, 9)',
                    'numeric(5,5)', 'boolean', 'date', 'timestamp', 'binary',
                    '  int  ']) AS t;

-- nested types, arbitrarily deep
SELECT left(t, 70) AS hive, sfexport_test.hive_to_snowflake(t) AS snowflake
  FROM unnest(ARRAY['array<string>', 'map<string,int>', 'struct<a:int,b:string>',
                    'array<struct<a:map<string,array<decimal(10,2)>>,b:struct<c:date>>>',
                    'map<int, array< struct< x : int > > >',
                    'struct<`weird name`:int,`a``b`:string>',
                    'uniontype<int,string>',
                    repeat('array<', 60) || 'int' || repeat('>', 60)]) AS t;

-- malformed or unknown types: an error naming the position
SELECT sfexport_test.hive_to_snowflake('strin');
SELECT sfexport_test.hive_to_snowflake('varchar');
SELECT sfexport_test.hive_to_snowflake('varchar(0)');
SELECT sfexport_test.hive_to_snowflake('char(256)');
SELECT sfexport_test.hive_to_snowflake('decimal(39,2)');
SELECT sfexport_test.hive_to_snowflake('decimal(5,6)');
SELECT sfexport_test.hive_to_snowflake('array<int');
SELECT sfexport_test.hive_to_snowflake('array<>');
SELECT sfexport_test.hive_to_snowflake('map<array<int>,string>');
SELECT sfexport_test.hive_to_snowflake('map<string>');
SELECT sfexport_test.hive_to_snowflake('struct<a int>');
SELECT sfexport_test.hive_to_snowflake('struct<>');
SELECT sfexport_test.hive_to_snowflake('struct<`a:int>');
SELECT sfexport_test.hive_to_snowflake('int; DROP TABLE x');
SELECT sfexport_test.hive_to_snowflake('string)');
SELECT sfexport_test.hive_to_snowflake('');
SELECT sfexport_test.hive_to_snowflake(repeat('array<', 70) || 'int' || repeat('>', 70)) IS NULL;
SELECT sfexport_test.hive_to_snowflake('decimal(9999999999)');

-- glue_* server options are checked at DDL time
CREATE SERVER g FOREIGN DATA WRAPPER sfexport OPTIONS (
    account 'myorg-myaccount', database 'DB', location 's3://lake/warehouse/',
    url 'http://127.0.0.1:1', glue_region 'eu-west-1',
    glue_endpoint 'http://127.0.0.1:1', glue_databases 'sales__raw, logs',
    glue_sync_interval '15min', glue_drop_missing 'false',
    glue_stage_map 'OTHER_STAGE=s3://other-bucket/data/, ANALYTICS.RAW.LOGS$1=s3://logs/');
ALTER SERVER g OPTIONS (SET glue_stage_map 'NOEQUALS');
ALTER SERVER g OPTIONS (SET glue_stage_map 'BAD NAME=s3://b/x/');
ALTER SERVER g OPTIONS (SET glue_stage_map 'A.B=s3://b/x/');
ALTER SERVER g OPTIONS (SET glue_stage_map 'S="x";DROP=s3://b/x/');
ALTER SERVER g OPTIONS (SET glue_stage_map 'S=gcs://bucket/x/');
ALTER SERVER g OPTIONS (SET glue_stage_map ' , ');
ALTER SERVER g OPTIONS (SET glue_region 'EU_WEST');
ALTER SERVER g OPTIONS (SET glue_endpoint 'ftp://x');
ALTER SERVER g OPTIONS (SET glue_sync_interval '5s');
ALTER SERVER g OPTIONS (SET glue_sync_interval 'often');
ALTER SERVER g OPTIONS (SET glue_drop_missing 'maybe');
-- another account's catalog, auto-refresh
ALTER SERVER g OPTIONS (ADD glue_catalog_id '210987654321', ADD glue_auto_refresh 'true');
ALTER SERVER g OPTIONS (SET glue_catalog_id E'1234\n5678');
ALTER SERVER g OPTIONS (SET glue_auto_refresh 'sometimes');
ALTER SERVER g OPTIONS (DROP glue_catalog_id, DROP glue_auto_refresh);

-- only the server's owner (or a superuser) may run glue_sync
CREATE ROLE glue_nobody;
GRANT USAGE ON FOREIGN SERVER g TO glue_nobody;
SET ROLE glue_nobody;
SELECT * FROM sfexport.glue_sync('g', 'sales__raw');
SELECT sfexport_test.hive_to_snowflake('int');
SELECT * FROM sfexport.glue_sync_state;
RESET ROLE;
SELECT * FROM sfexport.glue_sync('g', NULL);
SELECT * FROM sfexport.glue_sync('no_such_server', 'x');
SELECT * FROM sfexport.glue_sync('g', E'bad\nname');
-- no credentials in the mapping or the environment
CREATE USER MAPPING FOR CURRENT_USER SERVER g OPTIONS (user 'U');
SELECT * FROM sfexport.glue_sync('g', 'sales__raw');

DROP EXTENSION sfexport CASCADE;
DROP ROLE glue_nobody;
