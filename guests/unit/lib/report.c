/*
 * report.c: results in kvm-unit-tests' console format ("PASS: ...", "FAIL: ...",
 * "SUMMARY: ...", "EXIT: STATUS=..."), and the way out of the VM.
 */
#include "unit.h"

static int tests, failures;
static const char *prefix;

void report_prefix(const char *p)
{
	prefix = p;
}

static void line(const char *tag, const char *fmt, va_list ap)
{
	printf("%s: ", tag);
	if (prefix)
		printf("%s: ", prefix);
	vprintf(fmt, ap);
	putchar_unit('\n');
}

void report(bool pass, const char *fmt, ...)
{
	va_list ap;

	tests++;
	if (!pass)
		failures++;
	va_start(ap, fmt);
	line(pass ? "PASS" : "FAIL", fmt, ap);
	va_end(ap);
}

void report_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("INFO", fmt, ap);
	va_end(ap);
}

int report_summary(void)
{
	printf("SUMMARY: %d tests, %d unexpected failures\n", tests, failures);
	return failures ? 1 : 0;
}

void exit(int code)
{
	printf("EXIT: STATUS=%d\n", (code << 1) | 1);
	psci_system_off();
}

void abort(void)
{
	exit(64);
}
