/*-------------------------------------------------------------------------
 *
 * xml_scan.h
 *		A tag scanner for flat XML answers (xml_scan.c; protocols layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_XML_SCAN_H
#define SF_XML_SCAN_H

/* text of the first <tag>...</tag> at or after *pos (NULL: doc); advances *pos */
extern char *sf_xml_next(const char *doc, const char *tag, const char **pos);
/* text of the first <tag>...</tag> of doc, NULL if none (or doc is NULL) */
extern char *sf_xml_get(const char *doc, const char *tag);

#endif							/* SF_XML_SCAN_H */
