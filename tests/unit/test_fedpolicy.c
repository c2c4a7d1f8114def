/*
 * test_fedpolicy - statusd.conf's federation_policy (statusd/fedpolicy.c): the grammar,
 * the levels per domain, the default, and the SQL array literals handed to sql/011.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "check.h"
#include "fedpolicy.h"

static void
test_valid(void **state)
{
	static const struct {
		const char *text;
		int dflt;
		const char *domains, *levels;
		const char *ask;
		int want; /* level of ask */
	} rows[] = {
	        {"", FEDPOLICY_READ, "{}", "{}", "example.org", FEDPOLICY_READ},
	        {"   ", FEDPOLICY_READ, "{}", "{}", "example.org", FEDPOLICY_READ},
	        {"default:none", FEDPOLICY_NONE, "{}", "{}", "example.org", FEDPOLICY_NONE},
	        {"default:delivered", FEDPOLICY_DELIVERED, "{}", "{}", "a.example",
	         FEDPOLICY_DELIVERED},
	        {"default:delivered,read; example.com:none", FEDPOLICY_READ, "{example.com}", "{0}",
	         "example.com", FEDPOLICY_NONE},
	        {"default:delivered,read; example.com:none", FEDPOLICY_READ, "{example.com}", "{0}",
	         "sub.example.com", FEDPOLICY_READ},
	        {" example.com : delivered , read ;default: none;", FEDPOLICY_NONE, "{example.com}",
	         "{2}", "example.com", FEDPOLICY_READ},
	        {"Example.COM:delivered;b.example:none", FEDPOLICY_READ, "{example.com,b.example}",
	         "{1,0}", "example.com", FEDPOLICY_DELIVERED},
	        {"a.example:none;b.example:delivered;default:delivered", FEDPOLICY_DELIVERED,
	         "{a.example,b.example}", "{0,1}", "b.example", FEDPOLICY_DELIVERED},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fedpolicy p;
		const char *error = NULL;

		if (fedpolicy_parse(rows[i].text, &p, &error) < 0) {
			print_error("\"%s\": refused: %s\n", rows[i].text, error);
			failures++;
			fedpolicy_free(&p);
			continue;
		}
		CHECK_INT(rows[i].text, p.dflt, rows[i].dflt);
		CHECK_STR(rows[i].text, p.sql_domains, rows[i].domains);
		CHECK_STR(rows[i].text, p.sql_levels, rows[i].levels);
		CHECK_INT(rows[i].text, fedpolicy_level(&p, rows[i].ask), rows[i].want);
		fedpolicy_free(&p);
	}
	check_done();
}

static void
test_invalid(void **state)
{
	static const struct {
		const char *text, *error;
	} rows[] = {
	        {"default", "expected NAME:VALUE"},
	        {"default:read", "the value is none, delivered or delivered,read"},
	        {"default:delivered,", "the value is"},
	        {"default:read,delivered", "the value is"},
	        {"default:all", "the value is"},
	        {"default:none;default:none", "default given twice"},
	        {"a.example:none;A.example:delivered", "a.example given twice"},
	        {"a..example:none", "not a domain"},
	        {"example.org.:none", "not a domain"},
	        {"exa_mple.org:none", "not a domain"},
	        {"{x},y:none", "not a domain"},
	        {":none", "not a domain"},
	        {"default:none;;a.example:none", "empty entry"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fedpolicy p;
		const char *error = NULL;

		if (fedpolicy_parse(rows[i].text, &p, &error) == 0) {
			print_error("\"%s\": accepted\n", rows[i].text);
			failures++;
		} else
			CHECK_HAS(rows[i].text, error, rows[i].error);
		fedpolicy_free(&p);
	}
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid),
	        cmocka_unit_test(test_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
