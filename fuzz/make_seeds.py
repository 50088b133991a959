#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (fuzz/corpus/<target>/).

Replies are modelled on the Snowflake SQL API, S3 and GCS documentation
examples and on what the repository's emulators answer; the script format
is described in fuzz/pgstub.h (responses separated by a line "~~~", an
optional status line, "@name: value" header lines, then the body).
Run it again after changing a seed: the corpus is committed.
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))

def script(*responses):
    parts = []
    for r in responses:
        status, headers, body = (r + ({},))[:3] if len(r) == 2 else r
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        lines = [str(status)] + ["@%s: %s" % kv for kv in headers.items()]
        parts.append("\n".join(lines) + "\n" + body)
    return "\n~~~\n".join(parts)

def resp(status, body="", headers=None):
    return (status, headers or {}, body)

def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

H = "01b2c3d4-0000-1111-0000-000012345678"
ROWTYPE_TC = [{"name": n, "type": "text", "nullable": True} for n in
              ["CURRENT_ACCOUNT()", "CURRENT_USER()", "CURRENT_ROLE()",
               "CURRENT_WAREHOUSE()", "CURRENT_VERSION()"]]
def result(rowtype, data, parts=None, handle=H):
    meta = {"numRows": len(data), "format": "jsonv2", "rowType": rowtype,
            "partitionInfo": parts or [{"rowCount": len(data), "uncompressedSize": 100}]}
    return {"resultSetMetaData": meta, "data": data, "code": "090001",
            "statementStatusUrl": "/api/v2/statements/%s?requestId=x" % handle,
            "requestId": "x", "sqlState": "00000", "statementHandle": handle,
            "message": "Statement executed successfully.", "createdOn": 1700000000000}
COPY_COLS = ["file", "status", "rows_parsed", "rows_loaded", "error_limit",
             "errors_seen", "first_error", "first_error_line",
             "first_error_character", "first_error_column_name"]
COPY_RT = [{"name": c, "type": "text" if c in ("file", "status", "first_error", "first_error_column_name") else "fixed"} for c in COPY_COLS]
accepted = {"code": "333334", "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
            "statementHandle": H, "statementStatusUrl": "/api/v2/statements/" + H}

sf = {
    "direct_200": script(resp(200, result(ROWTYPE_TC, [["XY12345", "LOADER", "LOADER", "LOAD_WH", "9.5.0"]]))),
    "async_copy": script(resp(202, accepted), resp(202, accepted), resp(200, result(COPY_RT, [
        ["s3://b/p/t/1.csv.gz", "LOADED", "3", "3", "3", "0", None, None, None, None],
        ["s3://b/p/t/2.csv.gz", "PARTIALLY_LOADED", "3", "2", "3", "1", "Numeric value 'x' is not recognized", "2", "5", "\"T\"[\"ID\":1]"]]))),
    "zero_files": script(resp(202, accepted), resp(200, result([{"name": "status", "type": "text"}], [["Copy executed with 0 files processed."]]))),
    "partitions": script(resp(202, accepted), resp(200, result(ROWTYPE_TC[:2], [["a", "b"]], parts=[{"rowCount": 1}, {"rowCount": 2}, {"rowCount": 1}])),
                         resp(200, {"data": [["c", None], ["e", "f"]]}), resp(200, {"data": [["g", "h"]]})),
    "failed_422": script(resp(202, accepted), resp(422, {"code": "002003", "sqlState": "02000", "message": "SQL compilation error:\nTable 'T' does not exist or not authorized.", "statementHandle": H})),
    "syntax_422": script(resp(422, {"code": "001003", "sqlState": "42000", "message": "SQL compilation error: syntax error line 1 at position 0 unexpected 'x'.", "statementHandle": H})),
    "timeout_408": script(resp(202, accepted), resp(408, {"code": "000630", "sqlState": "57014", "message": "Statement reached its statement or warehouse timeout of 30 second(s) and was canceled.", "statementHandle": H})),
    "auth_401": script(resp(401, {"code": "390144", "message": "JWT token is invalid."}), resp(202, accepted), resp(200, result(ROWTYPE_TC, [["A", "B", "C", "D", "E"]]))),
    "auth_401_twice": script(resp(401, {"code": "390144", "message": "JWT token is invalid."}), resp(401, {"code": "390144", "message": "JWT token is invalid."})),
    "storm": script(resp(429, {"code": "390505", "message": "Too many requests"}, {"Retry-After": "1"}), resp(503, "<html><body><h1>503 Service Unavailable</h1></body></html>"), resp(504, ""), resp(202, accepted), resp(500, ""), resp(200, result(ROWTYPE_TC, [["A", "B", "C", "D", "E"]]))),
    "storm_forever": script(*[resp(503, "")] * 7),
    "html_200": script(resp(200, "<!DOCTYPE html><html><head><title>Error</title></head><body>Bad gateway</body></html>")),
    "no_handle_202": script(resp(202, {"code": "333334", "message": "in progress"})),
    "wrong_shapes": script(resp(200, {"resultSetMetaData": {"rowType": {"name": "x"}}, "data": {"a": 1}})),
    "row_width": script(resp(200, result(ROWTYPE_TC[:2], [["a"], ["b", "c", "d"]]))),
    "numbers": script(resp(200, result(ROWTYPE_TC[:3], [[1, 2.5, True], [None, [1, 2], {"k": "v"}]]))),
    "unexpected_404": script(resp(404, {"code": "390142", "message": "Incoming request with IP/Token is not allowed"})),
    "cancel_path": script(*([resp(202, accepted)] + [resp(202, accepted)] * 40 + [resp(200, {"code": "000000"})])),
}
write("snowflake", sf)

# ---- S3: first byte picks the operation (fuzz_s3.c) ----
def s3err(code, msg, extra=""):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>%s'
            '<RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>' % (code, msg, extra))
listing = lambda keys, token=None: (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    '<Name>bucket</Name><Prefix>p/</Prefix><KeyCount>%d</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>'
    % (len(keys), "true" if token else "false",
       "<NextContinuationToken>%s</NextContinuationToken>" % token if token else "",
       "".join("<Contents><Key>%s</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>" % k for k in keys)))
initiate = ('<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            '<Bucket>bucket</Bucket><Key>p/x.csv.gz</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>')
complete = ('<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult><Location>http://b/p/x</Location><Bucket>bucket</Bucket><Key>p/x</Key><ETag>"3858f62230ac3c915f300c664312c11f-2"</ETag></CompleteMultipartUploadResult>')
s3 = {
    "put_ok": "0" + script(resp(200, "", {"ETag": '"abc"'})),
    "put_sig": "0" + script(resp(403, s3err("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.", "<AWSAccessKeyId>AKIA</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256&#10;20240101T000000Z</StringToSign>"))),
    "put_nobucket": "0" + script(resp(404, s3err("NoSuchBucket", "The specified bucket does not exist", "<BucketName>bucket</BucketName>"))),
    "put_503": "0" + script(resp(503, s3err("SlowDown", "Please reduce your request rate.")), resp(500, s3err("InternalError", "We encountered an internal error. Please try again.")), resp(200, "")),
    "put_html": "0" + script(resp(502, "<html><body>Bad Gateway</body></html>")),
    "mp_ok": "1" + script(resp(200, initiate), resp(200, "", {"ETag": '"p1"'}), resp(200, "", {"ETag": '"p2"'}), resp(200, complete)),
    "mp_error_in_200": "1" + script(resp(200, initiate), resp(200, "", {"ETag": '"p1"'}), resp(200, "", {"ETag": '"p2"'}), resp(200, s3err("InternalError", "We encountered an internal error."))),
    "mp_noid": "1" + script(resp(200, "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>")),
    "mp_noetag": "1" + script(resp(200, initiate), resp(200, ""), resp(204, "")),
    "read_ok": "2" + script(resp(200, "a,b\n1,2\n")),
    "read_404": "2" + script(resp(404, s3err("NoSuchKey", "The specified key does not exist."))),
    "head": "3" + script(resp(200, "", {"Content-Length": "1234"})),
    "del_404": "4" + script(resp(404, s3err("NoSuchKey", "The specified key does not exist."))),
    "list_pages": "5" + script(resp(200, listing(["p/a.csv", "p/b&amp;c.csv"], "tok1")), resp(200, listing(["p/&#x41;.csv", "p/&#65;&lt;"]))),
    "check_entities": "6" + script(resp(400, s3err("InvalidArgument", "&lt;bad&gt; &amp; &quot;worse&quot; &apos; &#1234; &#x1F600; &#;"))),
}
write("s3", s3)

# ---- GCS: first byte picks the operation (fuzz_gcs.c) ----
tok = {"access_token": "ya29.c.fake", "expires_in": 3599, "token_type": "Bearer"}
gerr = lambda code, msg, reason: {"error": {"code": code, "message": msg, "errors": [{"message": msg, "domain": "global", "reason": reason}]}}
gcs = {
    "creds_ok": "0" + json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k", "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n", "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": "http://127.0.0.1/token"}),
    "creds_truncated": "0" + '{"type": "service_account", "private_key": "-----BEGIN',
    "creds_nokey": "0" + json.dumps({"type": "service_account", "client_email": "sa@p"}),
    "token_ok": "1" + script(resp(200, tok)),
    "token_grant": "1" + script(resp(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
    "token_html": "1" + script(resp(500, "<html>oops</html>"), resp(200, "not json")),
    "token_huge_expiry": "1" + script(resp(200, '{"access_token":"x","expires_in":9223372036854775807}')),
    "token_noaccess": "1" + script(resp(200, {"expires_in": 10})),
    "put_ok": "2" + script(resp(200, tok), resp(200, {"name": "p/x", "size": "10"})),
    "put_403": "2" + script(resp(200, tok), resp(403, gerr(403, "sa does not have storage.objects.create access", "forbidden"))),
    "put_401_retry": "2" + script(resp(200, tok), resp(401, gerr(401, "Invalid Credentials", "authError")), resp(200, tok), resp(200, {})),
    "mp_ok": "3" + script(resp(200, tok), resp(200, "", {"Location": "http://127.0.0.1/upload?upload_id=abc"}), resp(308, "", {"Range": "bytes=0-262143"}), resp(200, {"name": "x"})),
    "mp_retry": "3" + script(resp(200, tok), resp(200, "", {"Location": "http://127.0.0.1/upload?upload_id=abc"}), resp(503, ""), resp(308, "", {"Range": "bytes=0-1000"}), resp(308, "", {"Range": "bytes=0-262143"}), resp(503, ""), resp(200, "{}"), resp(200, "{}")),
    "mp_bad_range": "3" + script(resp(200, tok), resp(200, "", {"Location": "http://127.0.0.1/u"}), resp(308, "", {"Range": "bytes=0-9223372036854775807"})),
    "read_404": "4" + script(resp(200, tok), resp(404, "No such object: b/p/x")),
    "read_nobucket": "4" + script(resp(200, tok), resp(404, gerr(404, "The specified bucket does not exist.", "notFound"))),
    "head": "5" + script(resp(200, tok), resp(200, {"name": "x", "size": "12345"})),
    "del": "6" + script(resp(200, tok), resp(204, "")),
    "list": "7" + script(resp(200, tok), resp(200, {"kind": "storage#objects", "items": [{"name": "p/a"}, {"name": 5}, {}], "nextPageToken": "t"}), resp(200, {"items": [{"name": "p/b"}]})),
}
write("gcs", gcs)

# ---- encoder: fields separated by 0x00 (fuzz_encode.c) ----
write("encode", {
    "plain": b"hello\x00world",
    "quotes": b'a "quoted" value\x00""\x00"',
    "newlines": b"line1\nline2\r\n\x00,comma,\x00\\N\x00\\",
    "utf8": "caf\u00e9 \u65e5\u672c \U0001F600".encode(),
    "empty": b"\x00\x00",
    "numbers": b"\x01\x02\x03\x04\x05\x06\x07\x08\xff\xff\xff\xff\xff\xff\xef\x7f",
})

# ---- SigV4: lines (fuzz_sigv4.c) ----
write("sigv4", {
    "vanilla": "GET\n/\n\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n",
    "query": "GET\n/\nParam2=value2&Param1=value1\nHost:example.amazonaws.com\n",
    "utf8": "GET\n/\u1234\n\u1234=bar\nHost:example.amazonaws.com\nMy-Header1:    value1\n",
    "dots": "GET\n/example/../..//foo/./bar%20baz\nFoo=bar&foo=Bar&%41=b\nHost:example.amazonaws.com\nMy-Header1:a   b   c  \nmy-header1:second\n",
    "s3": "PUT\n/bucket/key%20with%20space\nuploads&partNumber=1&uploadId=a%2Fb\nHost:s3.amazonaws.com\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n",
    "empty_values": "GET\n/\n=&a=&=b&&&c\nHost:h\n:\nNoColon\n",
})
print("seeds written")
