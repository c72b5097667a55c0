/* fuzz_bulk: the store's bulk records (store/record.c): any bytes either decode change by
 * change within their end or are refused; what decodes, encoded again, decodes the same. */
#include "store/record.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dt_buf texts[4], again_texts[4];
    for (int k = 0; k < 4; k++) {
        dt_buf_init(&texts[k]);
        dt_buf_terminate(&texts[k]);
        dt_buf_init(&again_texts[k]);
        dt_buf_terminate(&again_texts[k]);
    }
    struct dt_record rec;
    memset(&rec, 0, sizeof(rec));
    const unsigned char *p = data, *end = data + size;
    size_t n = 0;
    while (p < end) {
        int64_t id;
        bool removed;
        struct dt_store_rule r = {0};
        const unsigned char *at = p;
        if (!dt_record_get(&p, end, &id, &r, &removed, texts))
            break;
        if (p <= at || p > end)
            abort();
        dt_record_put(&rec, id, removed ? NULL : &r);
        n++;
    }
    /* the changes read, written again: the same changes, and the whole of it read */
    const unsigned char *q = (const unsigned char *)(rec.buf.ptr ? rec.buf.ptr : "");
    const unsigned char *qend = q + rec.buf.len;
    const unsigned char *p2 = data, *end2 = p;
    for (size_t i = 0; i < n; i++) {
        int64_t id1, id2;
        bool rm1, rm2;
        struct dt_store_rule a = {0}, b = {0};
        if (!dt_record_get(&p2, end2, &id1, &a, &rm1, texts) ||
            !dt_record_get(&q, qend, &id2, &b, &rm2, again_texts))
            abort();
        if (id1 != id2 || rm1 != rm2)
            abort();
        if (!rm1 && (a.status != b.status || a.created != b.created || a.since != b.since ||
                     strcmp(a.source, b.source) || strcmp(a.target, b.target) ||
                     strcmp(a.options, b.options) || strcmp(a.note, b.note)))
            abort();
    }
    if (q != qend)
        abort();
    dt_buf_dispose(&rec.buf);
    for (int k = 0; k < 4; k++) {
        dt_buf_dispose(&rec.prev[k]);
        dt_buf_dispose(&texts[k]);
        dt_buf_dispose(&again_texts[k]);
    }
    return 0;
}
