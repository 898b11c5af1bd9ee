/*
 * printf.c: formatted output to the console or a buffer.
 *
 * Conversions: %s %c %d %i %u %x %X %p %%, with the length modifiers l, ll
 * and z, a field width, and the '0' and '-' flags. %p prints 0x and the
 * address in hex.
 */
#include "unit.h"

struct sink {
	char *buf;	/* NULL: the console */
	size_t size;
	size_t len;	/* characters produced, stored or not */
};

static void emit(struct sink *s, char c)
{
	if (!s->buf)
		putchar_unit(c);
	else if (s->len + 1 < s->size)
		s->buf[s->len] = c;
	s->len++;
}

static void emit_padded(struct sink *s, const char *str, size_t n, int width, bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;

	/* a zero-padded negative number keeps its sign in front of the zeros */
	if (pad == '0' && n && str[0] == '-') {
		emit(s, '-');
		str++;
		n--;
	}
	if (!left)
		while (fill-- > 0)
			emit(s, pad);
	while (n--)
		emit(s, *str++);
	if (left)
		while (fill-- > 0)
			emit(s, ' ');
}

static size_t format_u64(char *out, u64 v, unsigned int base, bool upper, bool negative)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	size_t n = 0, i = 0;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (negative)
		out[i++] = '-';
	while (n)
		out[i++] = tmp[--n];
	return i;
}

static int format(struct sink *s, const char *fmt, va_list ap)
{
	char num[32];

	for (; *fmt; fmt++) {
		bool left = false;
		char pad = ' ';
		int width = 0, lng = 0;
		size_t n;

		if (*fmt != '%') {
			emit(s, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '0')
				pad = '0';
			else if (*fmt == '-')
				left = true;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		for (;; fmt++) {
			if (*fmt == 'l')
				lng++;
			else if (*fmt == 'z')
				lng = 2;
			else
				break;
		}
		if (left)
			pad = ' ';

		switch (*fmt) {
		case '\0':
			return (int)s->len;
		case '%':
			emit(s, '%');
			break;
		case 'c':
			num[0] = (char)va_arg(ap, int);
			emit_padded(s, num, 1, width, left, ' ');
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);

			if (!str)
				str = "(null)";
			emit_padded(s, str, strlen(str), width, left, ' ');
			break;
		}
		case 'd':
		case 'i': {
			s64 v = lng ? va_arg(ap, s64) : va_arg(ap, int);
			u64 mag = v < 0 ? -(u64)v : (u64)v;

			n = format_u64(num, mag, 10, false, v < 0);
			emit_padded(s, num, n, width, left, pad);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			u64 v = lng ? va_arg(ap, u64) : va_arg(ap, unsigned int);

			n = format_u64(num, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false);
			emit_padded(s, num, n, width, left, pad);
			break;
		}
		case 'p': {
			u64 v = (u64)va_arg(ap, void *);

			num[0] = '0';
			num[1] = 'x';
			n = 2 + format_u64(num + 2, v, 16, false, false);
			emit_padded(s, num, n, width, left, ' ');
			break;
		}
		default:	/* unknown: print it as written */
			emit(s, '%');
			emit(s, *fmt);
			break;
		}
	}
	return (int)s->len;
}

int vprintf(const char *fmt, va_list ap)
{
	struct sink s = { NULL, 0, 0 };

	return format(&s, fmt, ap);
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = { buf, size, 0 };
	int n = format(&s, fmt, ap);

	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
