/* record: the format of the store's bulk records, apart from SQL: a list of changes
 * encoded compactly, and read back change by change within their end (fuzz_bulk). */
#ifndef DT_STORE_RECORD_H
#define DT_STORE_RECORD_H

#include "store/store.h"

/* A bulk record is a list of changes, in chunks that each read on their own: 'r' and a rule
 * id (removed), or 'w', a rule id, its status, created and since, then source, target,
 * options and note (the rule's new row; updated is the version's time). Numbers are
 * unsigned LEB128 varints; each text is the length of the prefix it shares with the same
 * text of the chunk's previous 'w', then the rest and a NUL (a bulk import's rules are
 * alike: a million of them take tens of megabytes less, to write and to sync). */
struct dt_record {
    struct dt_buf buf;
    size_t n;              /* the changes in buf */
    struct dt_buf prev[4]; /* the texts of the last 'w' of the chunk */
};

/* Appends one change to rec: rule id removed (r NULL), or written as r. */
void dt_record_put(struct dt_record *rec, int64_t id, const struct dt_store_rule *r);
/* Reads one change at *p (before end) into *id and r (*removed for an 'r'; r's texts live in
 * texts, the chunk's previous ones) and moves *p past it; false when the record is damaged
 * (never reading at or past end). */
bool dt_record_get(const unsigned char **p, const unsigned char *end, int64_t *id,
                   struct dt_store_rule *r, bool *removed, struct dt_buf texts[4]);

#endif
