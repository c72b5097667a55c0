/* time: monotonic milliseconds, the wall clock, HTTP dates (RFC 9110 5.6.7) and RFC 3339
 * timestamps. */
#include "base/base.h"

uint64_t dt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

time_t dt_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts.tv_sec;
}

static void two(char *o, int v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

/* "hh:mm:ss" */
static void put_hms(char *o, const struct tm *tm)
{
    two(o, tm->tm_hour);
    o[2] = ':';
    two(o + 3, tm->tm_min);
    o[5] = ':';
    two(o + 6, tm->tm_sec);
}

void dt_http_date(char out[29], time_t t)
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    gmtime_r(&t, &tm);
    memcpy(out, days + 3 * tm.tm_wday, 3);
    out[3] = ',';
    out[4] = ' ';
    two(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, months + 3 * tm.tm_mon, 3);
    out[11] = ' ';
    int year = tm.tm_year + 1900;
    two(out + 12, (year / 100) % 100);
    two(out + 14, year % 100);
    out[16] = ' ';
    put_hms(out + 17, &tm);
    memcpy(out + 25, " GMT", 4);
}

void dt_fmt_rfc3339(char out[21], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999)
        year = 9999; /* RFC 3339 years have four digits */
    two(out, year / 100);
    two(out + 2, year % 100);
    out[4] = '-';
    two(out + 5, tm.tm_mon + 1);
    out[7] = '-';
    two(out + 8, tm.tm_mday);
    out[10] = 'T';
    put_hms(out + 11, &tm);
    out[19] = 'Z';
    out[20] = '\0';
}

/* Reads exactly n digits at s[*i]; returns -1 if they are not there. */
static int digits(struct dt_str s, size_t *i, size_t n)
{
    int v = 0;
    if (s.len - *i < n)
        return -1;
    for (size_t k = 0; k < n; k++) {
        char c = s.ptr[*i + k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += n;
    return v;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timezone, no libc state). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int dt_parse_rfc3339(struct dt_str s, time_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    int year = digits(s, &i, 4);
    if (year < 0 || i >= s.len || s.ptr[i++] != '-')
        return DT_EINVAL;
    int mon = digits(s, &i, 2);
    if (mon < 1 || mon > 12 || i >= s.len || s.ptr[i++] != '-')
        return DT_EINVAL;
    int day = digits(s, &i, 2);
    int dim = mdays[mon - 1] + (mon == 2 && leap(year));
    if (day < 1 || day > dim)
        return DT_EINVAL;
    int hour = 0, min = 0, sec = 0, offset = 0;
    if (i < s.len) {
        if (s.ptr[i] != 'T' && s.ptr[i] != 't' && s.ptr[i] != ' ')
            return DT_EINVAL;
        i++;
        hour = digits(s, &i, 2);
        if (hour < 0 || hour > 23 || i >= s.len || s.ptr[i++] != ':')
            return DT_EINVAL;
        min = digits(s, &i, 2);
        if (min < 0 || min > 59 || i >= s.len || s.ptr[i++] != ':')
            return DT_EINVAL;
        sec = digits(s, &i, 2);
        if (sec < 0 || sec > 60) /* 60: a leap second, counted as the next minute */
            return DT_EINVAL;
        if (i < s.len && s.ptr[i] == '.') {
            size_t start = ++i;
            while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9')
                i++;
            if (i == start)
                return DT_EINVAL;
        }
        if (i >= s.len)
            return DT_EINVAL; /* RFC 3339 requires the offset */
        char z = s.ptr[i++];
        if (z == 'Z' || z == 'z') {
            offset = 0;
        } else if (z == '+' || z == '-') {
            int oh = digits(s, &i, 2);
            if (oh < 0 || oh > 23 || i >= s.len || s.ptr[i++] != ':')
                return DT_EINVAL;
            int om = digits(s, &i, 2);
            if (om < 0 || om > 59)
                return DT_EINVAL;
            offset = (oh * 60 + om) * 60 * (z == '-' ? -1 : 1);
        } else {
            return DT_EINVAL;
        }
        if (i != s.len)
            return DT_EINVAL;
    }
    int64_t t = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - offset;
    *out = (time_t)t;
    return 0;
}
