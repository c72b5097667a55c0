/* import: converters from foreign redirect lists (CSV bulk lists, nginx map blocks, Netlify
 * _redirects files) to detour rule lines, with errors that name file, line and column.
 * docs/import.md describes each format and how it maps. */
#ifndef DT_RULES_IMPORT_H
#define DT_RULES_IMPORT_H

#include "base/base.h"
#include "rules/rules.h"

/* Longest rule line a conversion writes; a longer one is reported as an error (the rule
 * loader takes lines up to 16 KiB). */
#define DT_IMPORT_MAX_LINE (16 * 1024)
/* Largest input converted at once (line numbers are 32-bit). */
#define DT_IMPORT_MAX_TEXT ((size_t)UINT32_MAX)

enum dt_rule_format { DT_FORMAT_DETOUR, DT_FORMAT_CSV, DT_FORMAT_NGINX_MAP, DT_FORMAT_NETLIFY };

/* Looks up a format by name, ignoring ASCII case: "detour", "csv", "nginx" (or "nginx-map"),
 * "netlify" (or "_redirects"). Returns 0 and sets *out, or DT_EINVAL for another name or
 * NULL. Any thread. */
DT_MUST_CHECK int dt_rule_format_parse(const char *name, enum dt_rule_format *out);

/* Guesses a file's format from its name (the last path component, extension case ignored):
 * *.csv is CSV; *.map and *.nginx are nginx maps; a file named _redirects, or *.redirects,
 * is Netlify; anything else (and NULL) is detour's own. Any thread. */
enum dt_rule_format dt_rule_format_guess(const char *path);

/* The canonical name of a format ("detour", "csv", "nginx", "netlify"), a static string;
 * "unknown" for a value outside the enum. Any thread. */
const char *dt_rule_format_name(enum dt_rule_format f);

/* One converted rule: a detour rule line without its newline, and the line of the input it
 * came from (1-based; for an entry that spans lines, the line where it starts). */
struct dt_import_line {
    char *text; /* NUL-terminated, owned by the dt_import it belongs to */
    uint32_t line;
};

/* The rule lines a conversion produced, in input order. Owns lines and every text in them;
 * free everything with dt_import_dispose. */
struct dt_import {
    struct dt_import_line *lines;
    size_t n, cap;
};

/* Makes an empty list. */
void dt_import_init(struct dt_import *im);
/* Frees every line and the array, leaving an empty list that may be used again. */
void dt_import_dispose(struct dt_import *im);

/* Converts text (named name in messages; NULL reads "-") from format f into detour rule
 * lines, appended to out (which keeps owning them). Every rule is written
 * "SOURCE TARGET STATUS [KEY=VALUE]..." with the status explicit. default_status is the
 * status of entries that carry none: 301, 302, 303, 307 or 308, or 0 for the format's own
 * default (307 for CSV and nginx maps, 301 for Netlify; detour lines are copied as they are).
 * Every entry that cannot be converted adds one "name:line:col: message" to errs (columns
 * count UTF-8 characters from 1) and conversion goes on, so that all errors are reported at
 * once; the entries that did convert are still appended. text is only read, and may be
 * freed once this returns.
 * Returns 0; DT_ESYNTAX when an error was added; DT_ELIMIT (also reported in errs) when text
 * is larger than DT_IMPORT_MAX_TEXT; DT_EINVAL for an unknown f or a default_status that is
 * not a redirect status. Aborts on out-of-memory. Any thread; touches only its arguments. */
DT_MUST_CHECK int dt_import_convert(enum dt_rule_format f, const char *name, struct dt_str text,
                                    int default_status, struct dt_import *out,
                                    struct dt_errors *errs);

/* A conversion fed piece by piece, for inputs too large to hold (detour check reads files of
 * millions of lines): what a format learns from earlier records (a CSV header's columns, that
 * a header made the rows unreadable) is kept between pieces, and the output, line numbers and
 * messages are byte for byte those of dt_import_convert on the whole input, wherever it is
 * split at whole records. dt_import_convert is this with one piece. Not shared between
 * threads. */
struct dt_import_stream;

/* Starts a conversion of format f; name and default_status as for dt_import_convert (name
 * is the caller's string, kept until dt_import_stream_free). Returns NULL for an unknown f or
 * a default_status that is not 0 or a redirect status. Aborts on out-of-memory. Free with
 * dt_import_stream_free. */
struct dt_import_stream *dt_import_stream_new(enum dt_rule_format f, const char *name,
                                              int default_status);

/* How many bytes at the start of text (input not yet fed, starting at a record boundary,
 * hence at the start of a line) are whole records that may be fed now; at_eof: text is the
 * rest of the input, so all of it is whole. CSV: records end at a line break outside quotes
 * (a record with an unclosed quote is whole only at the end); detour and Netlify: up to the
 * last LF; nginx maps: 0 until at_eof (a map block spans lines: the file is converted
 * whole). A cut is never between a CR and its LF. The text is read from its start at each
 * call: a reader whose buffer holds no whole record should double it, not add a fixed step,
 * so that a long record (an unclosed quote runs to the end) is read in O(n log n). text is
 * only read. */
size_t dt_import_stream_whole(const struct dt_import_stream *s, struct dt_str text, bool at_eof);

/* Converts text: whole records as measured by dt_import_stream_whole, following the ones
 * fed before, its first byte on line first_line of the input (1 for the first piece; the
 * caller counts the LFs it fed). The first bytes of the input may be a UTF-8 byte order mark,
 * skipped as dt_import_convert does. Rule lines are appended to out with the input's own
 * line numbers, and errors added to errs naming the input's own line and column; out and
 * errs may differ from piece to piece. text is only read, and may be freed once this
 * returns. Returns 0; DT_ESYNTAX when this piece added an error; DT_ELIMIT (reported once in
 * errs) once more than DT_IMPORT_MAX_TEXT bytes were fed, and for every piece after. */
DT_MUST_CHECK int dt_import_stream_feed(struct dt_import_stream *s, struct dt_str text,
                                        uint32_t first_line, struct dt_import *out,
                                        struct dt_errors *errs);

/* Frees a stream (NULL is allowed); what it converted stays in the caller's lists. */
void dt_import_stream_free(struct dt_import_stream *s);

#endif
