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
  engine   -- statement execution
  snowpipe -- Snowpipe REST API (insertFiles, insertReport, loadHistoryScan)
  streaming_pipe -- streaming pipes: COPY ... FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'))
  streaming -- Snowpipe Streaming REST API (channels, offset and continuation tokens)
  server   -- HTTP server: SQL API + /_emulator admin endpoints
"""
