/* sfexport--0.1.0--0.2.0.sql: upgrade sfexport 0.1.0 to 0.2.0 */

\echo Use "ALTER EXTENSION sfexport UPDATE TO '0.2.0'" to load this file. \quit

-- Every change to the objects of sfexport--0.2.0.sql is repeated here, so
-- that an upgraded database ends with the same objects as a new install
-- (test/t/003_upgrade.pl compares the two).

-- The test surface leaves the extension: the SigV4 signer, the storage
-- primitives and the Hive type mapping are now in the separate extension
-- sfexport_test, which a production install does not have
-- (docs/ARCHITECTURE.md, "Test surface").  The C symbols stay in the library.
DROP FUNCTION sfexport._sigv4_sign(text, text, text[], bytea, text, text, text, text, text, boolean);
DROP FUNCTION sfexport._storage_put(name, text, bytea, integer, boolean);
DROP FUNCTION sfexport._storage_get(name, text);
DROP FUNCTION sfexport._storage_head(name, text);
DROP FUNCTION sfexport._storage_delete(name, text);
DROP FUNCTION sfexport._storage_list(name, text);
DROP FUNCTION sfexport._hive_to_snowflake(text);
