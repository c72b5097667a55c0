/* convert: what the import converters (import.c and one file per foreign format) share:
 * one conversion's state, writing the converted rule line, checks of sources and targets,
 * and errors that name the line and column of the entry. Private to rules/import*.c. */
#ifndef DT_RULES_CONVERT_H
#define DT_RULES_CONVERT_H

#include "rules/import.h"

#define MAX_SHOWN 80 /* bytes of an offending value quoted in a message */

/* One conversion: the input, where converted rules and errors go, and the rule being written.
 * text is the piece being converted (the whole input, or whole records of it fed by a
 * dt_import_stream); its first byte is on line first_line of the input. */
struct conv {
    const char *name;
    struct dt_str text;
    uint32_t first_line;
    int status; /* the status of entries that carry none */
    struct dt_import *out;
    struct dt_errors *errs;   /* NULL: only measuring records (nothing is reported) */
    struct dt_buf rule;       /* the rule's source, then its target (from target_at on) */
    size_t target_at;         /* SIZE_MAX: rule holds a whole detour line, copied as it is */
    struct dt_rule_spec spec; /* the rule's status and options: the codec writes the line */
    struct dt_buf line;       /* the line the codec wrote */
    struct dt_buf aux;        /* scratch space of a format's entry */
    /* Where locate() last stopped: entries come in order, so finding lines stays linear. */
    size_t seen_off, seen_line_start;
    uint32_t seen_line;
};

/* A source taken apart: [SCHEME://][HOST]PATH. */
struct source {
    struct dt_str scheme; /* "http" or "https" (any case), or empty */
    struct dt_str host;   /* empty for a path that applies to any host */
    struct dt_str path;   /* from the first '/' or '?' on; may be empty after a host */
};

static inline bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static inline bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* The first character of a placeholder name, [A-Za-z_], and the others, [A-Za-z0-9_]. */
static inline bool name_start(unsigned char ch)
{
    return ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || ch == '_';
}

static inline bool name_char(unsigned char ch)
{
    return name_start(ch) || is_digit((char)ch);
}

void dt_import_fail(struct conv *c, size_t off, const char *fmt, ...) DT_PRINTF(3, 4);
size_t dt_import_offset_of(const struct conv *c, const char *p);
int dt_import_shown(struct dt_str v);
void dt_import_emit(struct conv *c, size_t at);
void dt_import_put(struct conv *c, struct dt_str s);
void dt_import_put_cstr(struct conv *c, const char *s);
void dt_import_begin(struct conv *c);
void dt_import_begin_target(struct conv *c);
void dt_import_put_encoded(struct conv *c, struct dt_str s);
bool dt_import_check_chars(struct dt_str v, const char *what, struct dt_diag *d);
size_t dt_import_http_scheme_len(struct dt_str v);
size_t dt_import_authority_end(struct dt_str v);
void dt_import_put_target(struct conv *c, struct dt_str t);
bool dt_import_check_target(struct dt_str v, struct dt_diag *d);
bool dt_import_split_source(struct dt_str v, bool bare_host, struct source *s, struct dt_diag *d);
void dt_import_put_source(struct conv *c, const struct source *s, bool subdomains);
size_t dt_import_next_line(const struct conv *c, size_t i);

/* The converters of the foreign formats: every entry of c->text to c->out, or an error. */
struct csv; /* what a CSV conversion learns from earlier records, kept between pieces */
struct csv *dt_import_csv_new(void);
void dt_import_csv_free(struct csv *cv);
void dt_import_csv(struct csv *cv, struct conv *c);
size_t dt_import_csv_whole(struct dt_str text, bool at_eof);
void dt_import_nginx(struct conv *c);
void dt_import_netlify(struct conv *c);

#endif
