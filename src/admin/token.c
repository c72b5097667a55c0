/* token: the admin API's bearer token, kept in a file only its owner may read. */
#include "admin/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_BYTES 32 /* 256 random bits, written as 64 hex digits */

static int read_token(const char *path, int fd, char *out, size_t cap, struct dt_buf *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        dt_buf_appendf(err, "%s: %s", path, strerror(errno));
        return DT_EIO;
    }
    if (st.st_mode & 077) {
        dt_buf_appendf(err, "%s: the token file must be readable by its owner only (chmod 600)",
                       path);
        return DT_EREFUSED;
    }
    ssize_t n = read(fd, out, cap - 1);
    if (n < 0) {
        dt_buf_appendf(err, "%s: %s", path, strerror(errno));
        return DT_EIO;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    if (n < 16) {
        dt_buf_appendf(err, "%s: the token must have at least 16 characters", path);
        return DT_EINVAL;
    }
    for (ssize_t i = 0; i < n; i++) {
        if ((unsigned char)out[i] <= ' ' || (unsigned char)out[i] >= 0x7f) {
            dt_buf_appendf(err, "%s: the token must be printable ASCII without spaces", path);
            return DT_EINVAL;
        }
    }
    return 0;
}

int dt_admin_token_load(const char *path, char *out, size_t cap, struct dt_buf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        int rc = read_token(path, fd, out, cap, err);
        close(fd);
        return rc;
    }
    if (errno != ENOENT) {
        dt_buf_appendf(err, "%s: %s", path, strerror(errno));
        return DT_EIO;
    }
    unsigned char raw[TOKEN_BYTES];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        dt_buf_appendf(err, "getrandom: %s", strerror(errno));
        return DT_EIO;
    }
    if (cap < 2 * TOKEN_BYTES + 1) {
        dt_buf_appendf(err, "token buffer too small");
        return DT_EINVAL;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * TOKEN_BYTES] = '\0';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        dt_buf_appendf(err, "cannot create the token file %s: %s", path, strerror(errno));
        return DT_EIO;
    }
    char line[2 * TOKEN_BYTES + 1];
    memcpy(line, out, 2 * TOKEN_BYTES);
    line[2 * TOKEN_BYTES] = '\n';
    bool ok = write(fd, line, sizeof(line)) == (ssize_t)sizeof(line) && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        dt_buf_appendf(err, "cannot write the token file %s: %s", path, strerror(e));
        return DT_EIO;
    }
    dt_log(DT_LOG_INFO, "admin API token written to %s (readable by its owner only)", path);
    return 0;
}

bool dt_admin_token_ok(struct dt_str authorization, const char *token)
{
    static const char scheme[] = "Bearer ";
    size_t tlen = strlen(token);
    /* Compare every byte whatever the input, so timing does not tell how much matched. */
    unsigned diff = authorization.len != sizeof(scheme) - 1 + tlen;
    for (size_t i = 0; i < sizeof(scheme) - 1 + tlen; i++) {
        unsigned char want = i < sizeof(scheme) - 1 ? (unsigned char)scheme[i]
                                                    : (unsigned char)token[i - sizeof(scheme) + 1];
        unsigned char got = i < authorization.len ? (unsigned char)authorization.ptr[i] : 0;
        if (i < 6) /* the scheme's name is case-insensitive (RFC 9110 11.1) */
            got = (unsigned char)(got | (got >= 'A' && got <= 'Z' ? 0x20 : 0)),
            want = (unsigned char)(want | (want >= 'A' && want <= 'Z' ? 0x20 : 0));
        diff |= (unsigned)(got ^ want);
    }
    return diff == 0;
}
