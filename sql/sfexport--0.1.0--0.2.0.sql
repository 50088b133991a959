/* sfexport--0.1.0--0.2.0.sql: upgrade sfexport 0.1.0 to 0.2.0 */

\echo Use "ALTER EXTENSION sfexport UPDATE TO '0.2.0'" to load this file. \quit

-- Every change to the objects of sfexport--0.2.0.sql is repeated here, so
-- that an upgraded database ends with the same objects as a new install
-- (test/t/003_upgrade.pl compares the two).
