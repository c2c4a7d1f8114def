/*
 * ctl_key - statusctl's commands about the federation's signing keys: make, rotate,
 * retire, list and the DNS records to publish. See statusctl(8), ctl.h and
 * federation/fedkeys.h.
 *
 * DESIGN
 *	No database: the keys are files in federation_key_dir, kept by fedkeys; these
 *	commands check their operands and print what fedkeys did and what to publish.
 *
 * SECURITY
 *	A domain and selector must be DNS labels before fedkeys builds a path from them;
 *	private keys are never printed.
 *
 * DIAGNOSTICS
 *	fedkeys' errors are fatal; exit 3 when the key named does not exist.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fedkeys.h"
#include "fedrec.h"
#include "mbuf.h"
#include "msg.h"
#include "rfc3339.h"

#define KEY_TTL_DEF 3600 /* seconds, for key records */

/* A selector from the command line, lower-cased into buf; usage error if not one label. */
static const char *
arg_selector(const char *domain, const char *s, char *buf)
{
	char owner[FEDREC_NAME_MAX];
	const char *error;
	size_t len = strlen(s);

	if (len > FEDREC_SELECTOR_MAX)
		ctl_usage("selector longer than %d bytes", FEDREC_SELECTOR_MAX);
	for (size_t i = 0; i <= len; i++)
		buf[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	if (fedrec_msk_name(buf, domain, owner, &error) < 0)
		ctl_usage("\"%s\" %s: a selector is one DNS label (letters, digits and "
		          "hyphens, not at either end), a domain LDH labels without a final dot",
		          strcmp(error, "not a valid selector") == 0 ? s : domain, error);
	return buf;
}

/* A domain as the federation writes it (see arg_domain), lower-cased; usage error if not. */
static char *
arg_fed_domain(const char *s)
{
	char *d = ctl_arg_domain(s);

	if (!fedrec_domain_valid(d, strlen(d)))
		ctl_usage("\"%s\" is not a domain name: LDH labels of 1 to 63 bytes, not "
		          "starting or ending with a hyphen",
		          s);
	return d;
}

/* DOMAIN SELECTOR operands, checked. */
static char *
key_operands(int argc, char **argv, char *selector)
{
	char *domain;

	ctl_operands(argc, 2, 2);
	domain = arg_fed_domain(argv[optind]);
	arg_selector(domain, argv[optind + 1], selector);
	return domain;
}

static void
key_file(struct ctl *ctl, const char *domain, const char *selector, char *buf, size_t size)
{
	const char *error;

	if (fedkeys_path(ctl->cfg.federation_key_dir, domain, selector, buf, size, &error) < 0)
		msg_fatal("%s", error);
}

/* The key's MSK1 record as a zone-file line into out, its text into txt. */
static void
key_record(const struct fedkeys_key *k, long ttl, struct mbuf *out, char *txt)
{
	struct fedrec_msk rec = {.revoked = k->state == FEDKEYS_RETIRED};
	char owner[FEDREC_NAME_MAX];
	const char *error;

	memcpy(rec.key, k->pub, sizeof(rec.key));
	if (fedrec_msk_name(k->selector, k->domain, owner, &error) < 0)
		msg_panic("key record: %s", error); /* the index was checked */
	fedrec_format_msk(&rec, txt);
	fedkeys_zone_txt(owner, ttl, txt, out);
}

static void
key_json(struct ctl *ctl, const struct fedkeys_key *k, struct json_object *obj)
{
	char b64[48], when[RFC3339_BUFSIZE], path[PATH_MAX];

	EVP_EncodeBlock((unsigned char *)b64, k->pub, FEDREC_KEY_LEN);
	json_object_object_add(obj, "domain", json_object_new_string(k->domain));
	json_object_object_add(obj, "selector", json_object_new_string(k->selector));
	json_object_object_add(obj, "state", json_object_new_string(fedkeys_state_name(k->state)));
	json_object_object_add(obj, "created",
	                       json_object_new_string(rfc3339_format(k->created_ms, when)));
	json_object_object_add(obj, "changed",
	                       json_object_new_string(rfc3339_format(k->changed_ms, when)));
	json_object_object_add(obj, "public_key", json_object_new_string(b64));
	key_file(ctl, k->domain, k->selector, path, sizeof(path));
	json_object_object_add(obj, "file",
	                       k->state == FEDKEYS_RETIRED ? NULL : json_object_new_string(path));
}

int
cmd_key_make(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char selector[FEDREC_SELECTOR_MAX + 1], path[PATH_MAX], txt[FEDREC_TXT_MAX + 1], *domain;
	struct mbuf rec = MBUF_INIT;
	struct fedkeys_key key;
	const char *error;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	domain = key_operands(argc, argv, selector);
	if (fedkeys_make(ctl->cfg.federation_key_dir, domain, selector, time_now_ms(), &key,
	                 &error) < 0)
		msg_fatal("key make: %s", error);
	key_file(ctl, domain, selector, path, sizeof(path));
	key_record(&key, KEY_TTL_DEF, &rec, txt);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		key_json(ctl, &key, doc);
		ctl_print_json(doc);
		json_object_put(doc);
	} else {
		printf("made key %s of %s (%s); private key in %s\n", selector, domain,
		       fedkeys_state_name(key.state), path);
		printf("publish this record in DNS before reports are signed with it:\n%s",
		       mbuf_str(&rec));
		if (key.state == FEDKEYS_PUBLISHED)
			printf("then, once its TTL has passed: statusctl key rotate %s %s\n",
			       domain, selector);
	}
	mbuf_free(&rec);
	free(domain);
	return 0;
}

int
cmd_key_rotate(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char selector[FEDREC_SELECTOR_MAX + 1], prev[FEDREC_SELECTOR_MAX + 1], *domain;
	const char *error;
	bool made;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	domain = key_operands(argc, argv, selector);
	if (fedkeys_rotate(ctl->cfg.federation_key_dir, domain, selector, time_now_ms(), &made,
	                   prev, &error) < 0)
		msg_fatal("key rotate: %s", error);
	if (made)
		fprintf(stderr,
		        "statusctl: made key %s just now: reports signed with it are refused "
		        "until its record is in DNS (statusctl key records %s); making it ahead "
		        "with key make avoids that\n",
		        selector, domain);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "domain", json_object_new_string(domain));
		json_object_object_add(doc, "signing", json_object_new_string(selector));
		json_object_object_add(doc, "previous",
		                       prev[0] ? json_object_new_string(prev) : NULL);
		json_object_object_add(doc, "made", json_object_new_boolean(made));
		ctl_print_json(doc);
		json_object_put(doc);
	} else if (prev[0] != '\0')
		printf("%s signs with %s now; %s stays valid (published) until "
		       "statusctl key retire %s %s\n",
		       domain, selector, prev, domain, prev);
	else
		printf("%s signs with %s now\n", domain, selector);
	free(domain);
	return 0;
}

int
cmd_key_retire(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char selector[FEDREC_SELECTOR_MAX + 1], *domain;
	const char *error;
	bool already;
	int rc;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	domain = key_operands(argc, argv, selector);
	rc = fedkeys_retire(ctl->cfg.federation_key_dir, domain, selector, time_now_ms(), &already,
	                    &error);
	if (rc == FEDKEYS_NOKEY) {
		fprintf(stderr, "statusctl: %s\n", error);
		free(domain);
		return EXIT_NOTFOUND;
	}
	if (rc < 0)
		msg_fatal("key retire: %s", error);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "domain", json_object_new_string(domain));
		json_object_object_add(doc, "selector", json_object_new_string(selector));
		json_object_object_add(doc, "state", json_object_new_string("retired"));
		json_object_object_add(doc, "already_retired", json_object_new_boolean(already));
		ctl_print_json(doc);
		json_object_put(doc);
	} else
		printf("%s of %s %s retired; its private key is deleted; publish its record with "
		       "an empty p= (statusctl key records %s)\n",
		       selector, domain, already ? "was already" : "is", domain);
	free(domain);
	return 0;
}

int
cmd_key_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct fedkeys_key *keys;
	const char *error;
	char *domain = NULL;
	size_t n;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	ctl_operands(argc, 0, 1);
	if (optind < argc)
		domain = arg_fed_domain(argv[optind]);
	if (fedkeys_list(ctl->cfg.federation_key_dir, domain, &keys, &n, &error) < 0)
		msg_fatal("key list: %s", error);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(), *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			struct json_object *k = json_object_new_object();
			key_json(ctl, &keys[i], k);
			json_object_array_add(arr, k);
		}
		json_object_object_add(doc, "keys", arr);
		ctl_print_json(doc);
		json_object_put(doc);
	} else if (n == 0) {
		printf("no federation keys%s%s in %s\n", domain ? " of " : "", domain ? domain : "",
		       ctl->cfg.federation_key_dir);
	} else {
		printf("%-24s %-16s %-9s %-24s %-24s %s\n", "DOMAIN", "SELECTOR", "STATE",
		       "CREATED", "CHANGED", "PUBLIC KEY");
		for (size_t i = 0; i < n; i++) {
			char b64[48], c1[RFC3339_BUFSIZE], c2[RFC3339_BUFSIZE];
			EVP_EncodeBlock((unsigned char *)b64, keys[i].pub, FEDREC_KEY_LEN);
			printf("%-24s %-16s %-9s %-24s %-24s %s\n", keys[i].domain,
			       keys[i].selector, fedkeys_state_name(keys[i].state),
			       rfc3339_format(keys[i].created_ms, c1),
			       rfc3339_format(keys[i].changed_ms, c2), b64);
		}
	}
	fedkeys_list_free(&keys);
	free(domain);
	return 0;
}

static void
record_json(struct json_object *arr, const char *owner, long long ttl, const char *txt,
            const struct fedkeys_key *k)
{
	struct json_object *rec = json_object_new_object();

	json_object_object_add(rec, "name", json_object_new_string(owner));
	json_object_object_add(rec, "ttl", json_object_new_int64(ttl));
	json_object_object_add(rec, "type", json_object_new_string("TXT"));
	json_object_object_add(rec, "text", json_object_new_string(txt));
	if (k != NULL) {
		json_object_object_add(rec, "selector", json_object_new_string(k->selector));
		json_object_object_add(rec, "state",
		                       json_object_new_string(fedkeys_state_name(k->state)));
	}
	json_object_array_add(arr, rec);
}

int
cmd_key_records(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"ttl", required_argument, NULL, 't'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	const char *endpoint = ctl->cfg.federation_endpoint, *error;
	struct json_object *arr = json_object_new_array();
	struct mbuf out = MBUF_INIT;
	struct fedkeys_key *keys;
	long long ttl = KEY_TTL_DEF;
	char *domain = NULL;
	size_t n;
	int ch;

	optind = 0;
	while ((ch = ctl_next_opt(ctl, argc, argv, "", lo)) != -1)
		if (ch == 't')
			ttl = ctl_arg_duration("--ttl", optarg) / 1000;
	if (ttl < 1 || ttl > 2147483647)
		ctl_usage("--ttl: from one second to 68 years");
	ctl_operands(argc, 0, 1);
	if (optind < argc)
		domain = arg_fed_domain(argv[optind]);
	if (fedkeys_list(ctl->cfg.federation_key_dir, domain, &keys, &n, &error) < 0)
		msg_fatal("key records: %s", error);
	if (endpoint[0] != '\0' &&
	    fedrec_format_msr(endpoint, (char[FEDREC_TXT_MAX + 1]){0}, &error) < 0)
		msg_fatal("%s: federation_endpoint: %s", ctl->config ? ctl->config : "(defaults)",
		          error);
	if (endpoint[0] == '\0')
		mbuf_printf(&out, "; federation_endpoint is not set: no _msgstatus record\n");
	for (size_t i = 0; i <= n; i++) {
		const char *d = i < n ? keys[i].domain : domain;
		char owner[FEDREC_NAME_MAX], txt[FEDREC_TXT_MAX + 1], when[RFC3339_BUFSIZE];
		bool first = i == 0 ? d != NULL : i < n && strcmp(d, keys[i - 1].domain) != 0;

		/* a domain's endpoint record first (for DOMAIN even when it has no keys) */
		if (first && endpoint[0] != '\0') {
			if (fedrec_msr_name(d, owner, &error) < 0 ||
			    fedrec_format_msr(endpoint, txt, &error) < 0)
				msg_panic("key records: %s", error);
			mbuf_printf(&out, "; %s: where it takes reports (federation_endpoint)\n",
			            d);
			fedkeys_zone_txt(owner, (long)ttl, txt, &out);
			record_json(arr, owner, ttl, txt, NULL);
		}
		if (i == n)
			break;
		fedrec_msk_name(keys[i].selector, keys[i].domain, owner, &error);
		mbuf_printf(&out, "; %s key %s: %s since %s%s\n", keys[i].domain, keys[i].selector,
		            fedkeys_state_name(keys[i].state),
		            rfc3339_format(keys[i].changed_ms, when),
		            keys[i].state == FEDKEYS_RETIRED ? " (revoked: empty p=)" : "");
		key_record(&keys[i], (long)ttl, &out, txt);
		record_json(arr, owner, ttl, txt, &keys[i]);
	}
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "records", arr);
		ctl_print_json(doc);
		json_object_put(doc);
	} else {
		fputs(mbuf_str(&out), stdout);
		json_object_put(arr);
	}
	mbuf_free(&out);
	fedkeys_list_free(&keys);
	free(domain);
	return 0;
}
