"""Snowflake SQL API v2 emulator (test stand-in for sfexport).

Modules:
  errors   -- SfError: a Snowflake error (HTTP status, code, sqlState, message)
  auth     -- key-pair JWT verification and registered OAuth / PAT tokens
  sqltok   -- tokenizer, identifiers, bind substitution
  statements -- statement parser (DDL, COPY INTO, SELECT)
  sftypes  -- column types, value conversion, JSON v2 result encoding
  fileformat -- file format options, CSV / JSON record parsers
  storage  -- stage readers: file://, s3:// (SigV4 via botocore), gcs://
  catalog  -- SQLite persistence (objects, rows, load metadata, statement log)
  engine   -- statement execution (DDL, COPY, SELECT)
  dmlparse -- parser for MERGE / INSERT / UPDATE / DELETE, transactions, USE /
              ALTER SESSION, SHOW, ALTER EXTERNAL TABLE
  relations -- FROM items (tables, subqueries, staged files), window functions,
              several sources at once (MERGE, UPDATE ... FROM)
  sqlfuncs -- scalar functions (SPLIT_PART, REPLACE, GET_IGNORE_CASE, ...)
  dml      -- INSERT, UPDATE, DELETE, MERGE
  txn      -- multi-statement requests, explicit transactions, temporary tables
  exttables -- external tables: registered files, refresh, partitions, SHOW
  snowpipe -- Snowpipe REST API (insertFiles, insertReport, loadHistoryScan)
  streaming_pipe -- streaming pipes: COPY ... FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'))
  streaming -- Snowpipe Streaming REST API (channels, offset and continuation tokens)
  server   -- HTTP server: SQL API + /_emulator admin endpoints
"""
