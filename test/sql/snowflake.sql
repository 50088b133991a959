--
-- Snowflake client: SQL objects, privileges, and key checks that need no
-- network (the TAP tests 020-029 talk to the emulator).
--
CREATE EXTENSION sfexport;
\set VERBOSITY default

CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
    account 'myorg-myaccount', database 'DB', location 's3://my-bucket/p/',
    url 'http://127.0.0.1:1');

-- the fingerprint of a throwaway 1024-bit test key (encrypted); openssl
-- computes SHA256:3SlfeIpzOaVFqeoY1TZ8tSN+Hl3BPeukQO991seK+fQ= for it
CREATE USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (
    user 'loader', private_key_passphrase 'pass-secret-1',
    private_key E'-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIC3TBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI04ZaqR+FEoICAggA\nMAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBA69/sjY3Yv0hXoytxMvF1XBIIC\ngI5cTwh0JBtKDORzW2OGP74OzXZ65Aw5cOGrmH0DenZBVZyQa3lAAe8mUio74RTl\naX5vZ5zUM6jDK3MnhBdVvANusNbt1lGHnx3j0POrToNUk6dyo6D23zkszcYyW7JU\nvafgLsy1akySP3z8+54BoVoucxVoeLGsIibWQya4FbxEiz9tsdPx5RHo57Bw36h4\nMVG15Vua1yMqaD0joT8G264r5CGjqnYGBFjr9o1v+anxNNDqIqcFgweNt76UTuSb\np7DSOxJyUXV8NNNouRyWLn6j3MswXS6RwvQ/UD0aOC010+H5i0pSKc1Ic7QcLay4\naEmb+KTuCoL+hPRk0exIsaYtva7gWm2tavjYTAKReQsTKdfm5QRL32ouw8qJuJhZ\nEjhuG0xkF2x1KfTSmWc7NU81PTNB1MLz/21fGSzlpLMxDxUaNOtRSyWUs6hDWUd4\nTbHWz35ZQUZBr6PauBI1320YOexEvKwkaiWQCInnrLbjdbz0faRrXpVK4cyoAVbM\naDAoZjAQsuWRUKQ7tWW9K00zlSUElK+I4pL+OCrRz/RY4m3LS7PkYG1p0awWiAYY\nfqV1IPPn4i/t9ooUwQLl9eSyqtwTTvd8QNrYGuQy37Hwumch+5T6wlQ65fl9fCfW\nNMAjZ0OGklw0MdFx5/EDe/SybWDjn5uRwjhjWeDWN5R8WAI2inS7zmnKNdbYNDTJ\nhWbR4QCPxuW6w9Etf+sDS4OxsaFiZg8nb7UQZAuEellfS6wELftwbwkaKutzRtnB\nneNcfttebWKrc7TblWGhSQQdoSlOdTq9KVMNJHrrH7jfWBF154CR1W9Enkg9OSs2\nG3p3gGeq0SGVPC5UinL0nf0=\n-----END ENCRYPTED PRIVATE KEY-----\n');
SELECT sfexport.public_key_fingerprint('sf');

-- keys that cannot be used are rejected, without echoing them
ALTER USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (SET private_key_passphrase 'wrong');
\echo SQLSTATE :SQLSTATE
ALTER USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (DROP private_key_passphrase);
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'U',
    private_key E'-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n');
\echo SQLSTATE :SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'U', private_key E'-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8X5Bv7d7T4FlRQeI\n5U5Iz4uOazH7flva3WpgViMXG0ChRANCAATYoV3HfquApiZdmcs50WwrAzJaKjKY\nR6AhKuob5pNNNsQrea8QlE9jQVkz1BmlIsj/e30d7OMyPbLWoWA6ELcQ\n-----END PRIVATE KEY-----\n');
\echo SQLSTATE :SQLSTATE

-- who may call what
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'sfexport'::regnamespace
   AND p.proname IN ('test_connection', 'public_key_fingerprint', 'snowflake_query')
 ORDER BY 1::text;
CREATE ROLE sf_nobody;
SET ROLE sf_nobody;
SELECT * FROM sfexport.test_connection('sf');
\echo SQLSTATE :SQLSTATE
SELECT * FROM sfexport.snowflake_query('sf', 'SELECT 1');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER sf TO sf_nobody;
SET ROLE sf_nobody;
-- PostgreSQL's own message, reworded in newer releases (18: "for user ..., server ..."): matched, not printed
\set VERBOSITY sqlstate
SELECT * FROM sfexport.test_connection('sf');
\set VERBOSITY default
\echo SQLSTATE :SQLSTATE
SELECT :'LAST_ERROR_MESSAGE' ~ '^user mapping not found for (user )?"sf_nobody"' AS no_user_mapping;
RESET ROLE;
SELECT * FROM sfexport.test_connection('no_such_server');
\echo SQLSTATE :SQLSTATE

DROP EXTENSION sfexport CASCADE;
DROP ROLE sf_nobody;
