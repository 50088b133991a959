--
-- Privileges: writers need only INSERT on the foreign table; the outbox and
-- user-mapping secrets stay hidden from everyone else.
--
CREATE EXTENSION sfexport;
\set VERBOSITY default
-- a production install has no test surface: the functions whose names
-- start with "_" are the launcher wake-up CREATE EXTENSION itself calls and
-- the event trigger function that checks DDL on sfexport servers
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.pronamespace = 'sfexport'::regnamespace AND p.proname LIKE '\_%' ORDER BY 1;
-- the test surface is the extension sfexport_test (make install
-- SFEXPORT_TEST_SURFACE=1); checked below: nobody else may use it
CREATE EXTENSION sfexport_test;
CREATE ROLE regress_sf_admin;
CREATE ROLE regress_sf_writer;
CREATE ROLE regress_sf_other;
GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO regress_sf_admin;
GRANT CREATE ON SCHEMA public TO regress_sf_admin;

SET ROLE regress_sf_admin;
-- a non-superuser may create an S3 server ...
CREATE SERVER sf FOREIGN DATA WRAPPER sfexport
  OPTIONS (account 'acct', database 'DB', location 's3://bucket/prefix/');
-- ... but neither a file:// location nor options that name server files
CREATE SERVER sf_file FOREIGN DATA WRAPPER sfexport
  OPTIONS (account 'acct', database 'DB', location 'file:///tmp/x/');
\echo SQLSTATE :SQLSTATE
ALTER SERVER sf OPTIONS (ADD ca_file '/etc/ssl/certs/ca-certificates.crt');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR regress_sf_admin SERVER sf
  OPTIONS (user 'U', private_key_file '/etc/passwd');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR regress_sf_admin SERVER sf
  OPTIONS (user 'U', token 'admin-token-secret', aws_access_key_id 'AKIA1',
           aws_secret_access_key 'admin-aws-secret');
CREATE USER MAPPING FOR PUBLIC SERVER sf
  OPTIONS (token 'public-token-secret');
CREATE FOREIGN TABLE ev (id int, v text) SERVER sf;
GRANT INSERT ON ev TO regress_sf_writer;
RESET ROLE;

-- the writer inserts with INSERT privilege only, also through COPY
SET ROLE regress_sf_writer;
INSERT INTO ev VALUES (1, 'from writer');
COPY ev FROM STDIN;
2	copied by writer
\.
SELECT foreign_table, pending_rows FROM sfexport.status;
-- but cannot read the outbox, the shapes, or change them
SELECT * FROM sfexport.outbox;
\echo SQLSTATE :SQLSTATE
DELETE FROM sfexport.outbox;
\echo SQLSTATE :SQLSTATE
INSERT INTO sfexport.outbox VALUES (0, 0, now(), 'x');
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.shapes;
\echo SQLSTATE :SQLSTATE
SELECT sfexport.outbox_record(0, 0, '\x01');
\echo SQLSTATE :SQLSTATE
-- and sees no user-mapping options, neither the admin's nor PUBLIC's
SELECT usename, umoptions FROM pg_user_mappings WHERE srvname = 'sf' ORDER BY usename;
SELECT * FROM pg_user_mapping;
\echo SQLSTATE :SQLSTATE
RESET ROLE;

-- someone without INSERT cannot write
SET ROLE regress_sf_other;
INSERT INTO ev VALUES (3, 'no privilege');
\echo SQLSTATE :SQLSTATE
SELECT usename, umoptions FROM pg_user_mappings WHERE srvname = 'sf' ORDER BY usename;
RESET ROLE;

-- the server owner sees its own mappings, as PostgreSQL decides
SET ROLE regress_sf_admin;
SELECT usename, umoptions IS NOT NULL AS visible FROM pg_user_mappings WHERE srvname = 'sf' ORDER BY usename;
RESET ROLE;

-- nor can anyone without ownership call a function that could reveal the
-- secrets: the setup and Glue functions need the server's owner, the
-- connection checks USAGE on the server, the raw helpers are not granted
SET ROLE regress_sf_other;
SELECT * FROM sfexport.setup_stage('sf', true);
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.setup('sf', true);
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.setup_table('ev', true);
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.glue_sync('sf', 'db', dry_run => true);
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.test_connection('sf');
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.test_storage('sf');
\echo SQLSTATE :SQLSTATE
SELECT sfexport.public_key_fingerprint('sf');
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.snowflake_query('sf', 'SELECT 1');
\echo SQLSTATE :SQLSTATE
SELECT sfexport_test.storage_get('sf', 'x');
\echo SQLSTATE :SQLSTATE
SELECT sfexport_test.storage_list('sf');
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport_test.sigv4_sign('GET', 'https://h/', ARRAY[]::text[], '', 'AKIA1', 'x',
    'us-east-1', 's3', '20150830T123600Z', true);
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.files;
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.glue_sync_state;
\echo SQLSTATE :SQLSTATE
RESET ROLE;
-- neither the schema of the test surface nor any of its functions is granted
SELECT count(*) AS test_functions,
       bool_or(has_function_privilege('regress_sf_other', p.oid, 'EXECUTE')) AS any_granted,
       has_schema_privilege('regress_sf_other', 'sfexport_test', 'USAGE') AS schema_granted
  FROM pg_proc p WHERE p.pronamespace = 'sfexport_test'::regnamespace;
-- a writer with INSERT on the foreign table is no different
SET ROLE regress_sf_writer;
SELECT * FROM sfexport.setup_stage('sf', true);
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.test_connection('sf');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
-- the owner may: the dry run shows the statement with the credentials masked
SET ROLE regress_sf_admin;
SELECT bool_or(s LIKE '%admin-aws-secret%' OR s LIKE '%AKIA1%') AS credentials_shown,
       bool_or(s LIKE '%CREDENTIALS = (AWS_KEY_ID = ''***'' AWS_SECRET_KEY = ''***'')%') AS masked
  FROM sfexport.setup_stage('sf', true) s;
RESET ROLE;

SELECT sfexport.outbox_record(relid, shape, line) AS line FROM sfexport.outbox ORDER BY 1;

-- only the server's owner defines foreign tables on it: USAGE on the
-- server is not enough to point one at a Snowflake table of its choosing
GRANT USAGE ON FOREIGN SERVER sf TO regress_sf_other;
GRANT CREATE ON SCHEMA public TO regress_sf_other;
SET ROLE regress_sf_other;
CREATE FOREIGN TABLE other_ev (ssn text) SERVER sf OPTIONS (table 'PAYROLL');
\echo SQLSTATE :SQLSTATE
CREATE FOREIGN TABLE payroll (ssn text) SERVER sf;
\echo SQLSTATE :SQLSTATE
RESET ROLE;
-- nor may a new owner of a foreign table retarget it
ALTER FOREIGN TABLE ev OWNER TO regress_sf_other;
SET ROLE regress_sf_other;
ALTER FOREIGN TABLE ev OPTIONS (ADD table 'PAYROLL');
\echo SQLSTATE :SQLSTATE
ALTER FOREIGN TABLE ev ALTER COLUMN v OPTIONS (ADD column_name 'SSN');
\echo SQLSTATE :SQLSTATE
ALTER TABLE ev RENAME TO payroll;
\echo SQLSTATE :SQLSTATE
RESET ROLE;
ALTER FOREIGN TABLE ev OWNER TO regress_sf_admin;
-- the server's owner may
SET ROLE regress_sf_admin;
ALTER FOREIGN TABLE ev OPTIONS (ADD table 'EV');
ALTER FOREIGN TABLE ev OPTIONS (DROP table);
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_sf_other;
REVOKE USAGE ON FOREIGN SERVER sf FROM regress_sf_other;

-- sfexport.status: counts for everyone, error text (which quotes row
-- values) only for the table's owner, roles with SELECT, pg_monitor
INSERT INTO sfexport.files (relid, server, name, target, shape, columns, types,
    compression, rows, bytes, raw_bytes, state, first_error, staged_at)
  SELECT 'ev'::regclass, srv.oid, 'f1.csv.gz', '"DB"."PUBLIC"."EV"', 0, '{id,v}', '{int,text}',
         'GZIP', 2, 10, 20, 'failed', 'Numeric value ''123-45-6789'' is not recognized', now()
    FROM pg_foreign_server srv WHERE srv.srvname = 'sf';
SET ROLE regress_sf_other;
SELECT foreign_table, failed_files, last_error FROM sfexport.status;
RESET ROLE;
SET ROLE regress_sf_writer;
SELECT foreign_table, failed_files, last_error FROM sfexport.status;
RESET ROLE;
SET ROLE regress_sf_admin;
SELECT foreign_table, failed_files, last_error FROM sfexport.status;
RESET ROLE;
GRANT pg_monitor TO regress_sf_other;
SET ROLE regress_sf_other;
SELECT foreign_table, failed_files, last_error FROM sfexport.status;
RESET ROLE;
REVOKE pg_monitor FROM regress_sf_other;
-- a function of the caller's sees only what the view shows
CREATE FUNCTION public.regress_peek(t text) RETURNS boolean
  LANGUAGE plpgsql COST 0.0000001 AS $$BEGIN RAISE NOTICE 'peek: %', t; RETURN true; END$$;
SET ROLE regress_sf_other;
SELECT count(*) FROM sfexport.status WHERE public.regress_peek(last_error);
RESET ROLE;
DROP FUNCTION public.regress_peek(text);

-- what every role can execute and read in the extension (an audit list:
-- each PUBLIC entry shows no secrets and no other role's row values)
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_sf_other', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p WHERE p.pronamespace = 'sfexport'::regnamespace ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT c.relname, has_table_privilege('regress_sf_other', c.oid, 'SELECT') AS public_may_read,
       has_table_privilege('pg_monitor', c.oid, 'SELECT') AS pg_monitor_may_read
  FROM pg_class c WHERE c.relnamespace = 'sfexport'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY c.relname COLLATE "C";

DROP EXTENSION sfexport CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_sf_admin;
DROP ROLE regress_sf_admin, regress_sf_writer, regress_sf_other;
