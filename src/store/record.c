/* record: the bulk record format (store/record.h): LEB128 varints and texts front-coded
 * against the chunk's previous change. */
#include "store/record.h"

static void put_varint(struct dt_buf *b, uint64_t v)
{
    unsigned char c[10];
    int n = 0;
    do {
        c[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c[n] |= 0x80;
        n++;
    } while (v);
    dt_buf_append(b, c, (size_t)n);
}

static void put_text(struct dt_buf *b, struct dt_buf *prev, const char *t)
{
    size_t len = strlen(t), same = 0;
    while (same < len && same < prev->len && prev->ptr[same] == t[same])
        same++;
    put_varint(b, same);
    dt_buf_append(b, t + same, len - same + 1);
    prev->len = 0;
    dt_buf_append(prev, t, len);
}

void dt_record_put(struct dt_record *rec, int64_t id, const struct dt_store_rule *r)
{
    struct dt_buf *b = &rec->buf;
    rec->n++;
    dt_buf_append(b, r ? "w" : "r", 1);
    put_varint(b, (uint64_t)id);
    if (!r)
        return;
    put_varint(b, (uint64_t)r->status);
    put_varint(b, (uint64_t)r->created);
    put_varint(b, (uint64_t)r->since);
    const char *text[4] = {r->source, r->target, r->options ? r->options : "",
                           r->note ? r->note : ""};
    for (int k = 0; k < 4; k++)
        put_text(b, &rec->prev[k], text[k]);
}

static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

bool dt_record_get(const unsigned char **p, const unsigned char *end, int64_t *id,
                   struct dt_store_rule *r, bool *removed, struct dt_buf texts[4])
{
    if (*p >= end || (**p != 'r' && **p != 'w'))
        return false;
    *removed = *(*p)++ == 'r';
    uint64_t v[4];
    if (!get_varint(p, end, &v[0]))
        return false;
    *id = (int64_t)v[0];
    if (*removed)
        return true;
    for (int k = 1; k < 4; k++)
        if (!get_varint(p, end, &v[k]))
            return false;
    r->status = (int)v[1];
    r->created = (int64_t)v[2];
    r->since = (int64_t)v[3];
    for (int k = 0; k < 4; k++) {
        uint64_t same;
        if (!get_varint(p, end, &same) || same > texts[k].len)
            return false;
        const unsigned char *nul = memchr(*p, 0, (size_t)(end - *p));
        if (!nul)
            return false;
        texts[k].len = (size_t)same;
        dt_buf_append(&texts[k], *p, (size_t)(nul - *p));
        dt_buf_terminate(&texts[k]);
        *p = nul + 1;
    }
    r->source = texts[0].ptr;
    r->target = texts[1].ptr;
    r->options = texts[2].ptr;
    r->note = texts[3].ptr;
    return true;
}
