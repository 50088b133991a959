--
-- Option validation for servers, user mappings, foreign tables and columns.
--
CREATE EXTENSION sfexport;
\set VERBOSITY default

-- a complete, valid server
CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
    account 'myorg-myaccount', database 'ANALYTICS', schema 'RAW',
    warehouse 'LOAD_WH', role 'LOADER', stage 'PG_STAGE',
    location 's3://my-bucket/exports/pg/', region 'us-east-1',
    storage_integration 'S3_INT', file_format 'PG_CSV', compression 'zstd',
    keep_files 'true', statement_timeout '10min', connect_timeout '5s',
    request_timeout '2min', flush_interval '1min', flush_size '16MB',
    max_file_size '128MB', batch_size '500',
    url 'https://myorg-myaccount.privatelink.snowflakecomputing.com',
    endpoint 'https://s3.us-east-1.amazonaws.com');

-- required options
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (database 'D', location 's3://bkt/p/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', location 's3://bkt/p/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D');
\echo SQLSTATE :SQLSTATE
ALTER SERVER sf OPTIONS (DROP account);
\echo SQLSTATE :SQLSTATE

-- unknown and wrong-context options
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', acount 'x');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', user 'x');
\echo SQLSTATE :SQLSTATE
ALTER FOREIGN DATA WRAPPER sfexport OPTIONS (ADD account 'x');
\echo SQLSTATE :SQLSTATE

-- malformed values
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'my account', database 'D', location 's3://bkt/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database '', location 's3://bkt/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 'ftp://bkt/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://B/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt//x/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 'file://relative/dir');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 'file:///tmp/../etc/');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', url 'ftp://x');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', url 'https://u:p@x');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', endpoint 'http://a b');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', region 'US_EAST');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', compression 'lz4');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', compression_level '0');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', compression_level '10');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', compression 'zstd', compression_level '20');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', compression 'none', compression_level '1');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', keep_files 'maybe');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', load_mode 'pipe');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', flush_interval 'soon');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', flush_interval '0');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', flush_interval '30 days');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', flush_size '12 parsecs');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', max_file_size '10kB');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', batch_size '0');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', batch_size 'ten');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', connect_timeout '1ms');
\echo SQLSTATE :SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D', location 's3://bkt/', ca_file 'relative.pem');
\echo SQLSTATE :SQLSTATE

-- other location forms
CREATE SERVER sf_gcs FOREIGN DATA WRAPPER sfexport OPTIONS (account 'xy12345.us-east-2.aws', database 'D', location 'gcs://my_bucket/a/b', storage_integration 'GCS_INT');
CREATE SERVER sf_file FOREIGN DATA WRAPPER sfexport OPTIONS (account 'acct', database 'D', location 'file:///var/tmp/sfexport/');
ALTER SERVER sf_gcs OPTIONS (SET location 'gcs://xyz/');
ALTER SERVER sf_gcs OPTIONS (SET location 'gcs://x/');
\echo SQLSTATE :SQLSTATE
ALTER SERVER sf_gcs OPTIONS (ADD compression 'none');
-- compression_level goes with gzip (1-9) or zstd (1-19), checked against the resulting option set
ALTER SERVER sf_gcs OPTIONS (ADD compression_level '3');
\echo SQLSTATE :SQLSTATE
ALTER SERVER sf_gcs OPTIONS (SET compression 'zstd', ADD compression_level '12');
ALTER SERVER sf_gcs OPTIONS (SET compression 'gzip');
\echo SQLSTATE :SQLSTATE
ALTER SERVER sf_gcs OPTIONS (SET compression 'none', DROP compression_level);

-- user mappings
CREATE USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (
    user 'LOADER_USER',
    -- a throwaway 1024-bit test key, encrypted with the passphrase below
    private_key E'-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIC3TBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI04ZaqR+FEoICAggA\nMAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBA69/sjY3Yv0hXoytxMvF1XBIIC\ngI5cTwh0JBtKDORzW2OGP74OzXZ65Aw5cOGrmH0DenZBVZyQa3lAAe8mUio74RTl\naX5vZ5zUM6jDK3MnhBdVvANusNbt1lGHnx3j0POrToNUk6dyo6D23zkszcYyW7JU\nvafgLsy1akySP3z8+54BoVoucxVoeLGsIibWQya4FbxEiz9tsdPx5RHo57Bw36h4\nMVG15Vua1yMqaD0joT8G264r5CGjqnYGBFjr9o1v+anxNNDqIqcFgweNt76UTuSb\np7DSOxJyUXV8NNNouRyWLn6j3MswXS6RwvQ/UD0aOC010+H5i0pSKc1Ic7QcLay4\naEmb+KTuCoL+hPRk0exIsaYtva7gWm2tavjYTAKReQsTKdfm5QRL32ouw8qJuJhZ\nEjhuG0xkF2x1KfTSmWc7NU81PTNB1MLz/21fGSzlpLMxDxUaNOtRSyWUs6hDWUd4\nTbHWz35ZQUZBr6PauBI1320YOexEvKwkaiWQCInnrLbjdbz0faRrXpVK4cyoAVbM\naDAoZjAQsuWRUKQ7tWW9K00zlSUElK+I4pL+OCrRz/RY4m3LS7PkYG1p0awWiAYY\nfqV1IPPn4i/t9ooUwQLl9eSyqtwTTvd8QNrYGuQy37Hwumch+5T6wlQ65fl9fCfW\nNMAjZ0OGklw0MdFx5/EDe/SybWDjn5uRwjhjWeDWN5R8WAI2inS7zmnKNdbYNDTJ\nhWbR4QCPxuW6w9Etf+sDS4OxsaFiZg8nb7UQZAuEellfS6wELftwbwkaKutzRtnB\nneNcfttebWKrc7TblWGhSQQdoSlOdTq9KVMNJHrrH7jfWBF154CR1W9Enkg9OSs2\nG3p3gGeq0SGVPC5UinL0nf0=\n-----END ENCRYPTED PRIVATE KEY-----\n',
    private_key_passphrase 'pass-secret-1',
    aws_access_key_id 'AKIAEXAMPLE', aws_secret_access_key 'aws-secret-1',
    aws_session_token 'session-secret-1');
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'U', private_key 'not a pem');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (token 'tok', token_type 'BEARER');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (token_type 'OAUTH');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (token 'tok', token_type 'KEYPAIR_JWT');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'U', token 'tok', private_key_file '/k.pem');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'U', private_key_file 'k.pem');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (private_key_passphrase 'x', user 'U');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (aws_secret_access_key 'only-secret');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (aws_access_key_id 'only-id');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (gcs_credentials '{"client_email": "a@b"');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (gcs_credentials '{"client_email": "a@b"}');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (gcs_credentials '{"private_key": "k", "client_email": "a@b"}', gcs_credentials_file '/x.json');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (account 'x');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (token 'tok-secret-2', token_type 'PROGRAMMATIC_ACCESS_TOKEN');
\echo SQLSTATE :SQLSTATE
ALTER USER MAPPING FOR PUBLIC SERVER sf OPTIONS (SET token_type 'OAUTH');
\echo SQLSTATE :SQLSTATE
ALTER USER MAPPING FOR PUBLIC SERVER sf OPTIONS (DROP token);
\echo SQLSTATE :SQLSTATE
-- values sent in HTTP headers: no CR, LF or other control characters (the
-- secret ones are never quoted)
ALTER USER MAPPING FOR PUBLIC SERVER sf OPTIONS (SET token E'tok-secret-2\r\nX-Injected: 1');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf_gcs OPTIONS (aws_access_key_id E'AKIA\nX',
    aws_secret_access_key 'aws-secret-3');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf_gcs OPTIONS (aws_access_key_id 'AKIA',
    aws_secret_access_key E'aws-secret-3\t', aws_session_token E'session-secret-3\n');
\echo SQLSTATE :SQLSTATE

-- foreign tables and columns
CREATE FOREIGN TABLE events (id bigint OPTIONS (column_name 'EVENT_ID'), payload text)
  SERVER sf OPTIONS (table 'EVENTS', schema 'RAW', flush_interval '30s',
                     flush_size '1MB', max_file_size '50MB', batch_size '100');
CREATE FOREIGN TABLE bad1 (id int) SERVER sf OPTIONS (tabel 'x');
\echo SQLSTATE :SQLSTATE
CREATE FOREIGN TABLE bad1 (id int) SERVER sf OPTIONS (location 's3://bkt/');
\echo SQLSTATE :SQLSTATE
CREATE FOREIGN TABLE bad1 (id int) SERVER sf OPTIONS (flush_interval '-1');
\echo SQLSTATE :SQLSTATE
CREATE FOREIGN TABLE bad1 (id int) SERVER sf OPTIONS ("table" '');
\echo SQLSTATE :SQLSTATE
CREATE FOREIGN TABLE bad1 (id int OPTIONS (colum_name 'x')) SERVER sf;
\echo SQLSTATE :SQLSTATE
CREATE FOREIGN TABLE bad1 (id int OPTIONS (column_name '')) SERVER sf;
\echo SQLSTATE :SQLSTATE
ALTER FOREIGN TABLE events OPTIONS (SET flush_interval '2h');
ALTER FOREIGN TABLE events ALTER COLUMN payload OPTIONS (ADD column_name 'PAYLOAD');

SELECT srvname, srvoptions FROM pg_foreign_server ORDER BY srvname;
SELECT ftrelid::regclass, ftoptions FROM pg_foreign_table ORDER BY 1;
SELECT attname, attfdwoptions FROM pg_attribute WHERE attrelid = 'events'::regclass AND attnum > 0 ORDER BY attnum;

DROP EXTENSION sfexport CASCADE;
