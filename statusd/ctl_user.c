/*
 * ctl_user - statusctl's commands about people: API tokens (create, list, revoke, sign),
 * users (show, admin) and preferences. See statusctl(8) and ctl.h.
 *
 * DESIGN
 *	Tokens and users are read and changed through the storage layer (store_user.c);
 *	signed tokens are made in memory with the secret of auth_secret_file (token.h).
 *
 * SECURITY
 *	An API token is printed once, when it is made; only its SHA-256 is stored, and no
 *	command can show it again. The secret is wiped after use. Names and labels are checked
 *	before they are stored; text read back is cleaned before it reaches a terminal.
 *
 * DIAGNOSTICS
 *	Database failures are fatal, with a hint when the schema is missing; exit 3 when the
 *	token or user named does not exist.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "render.h"
#include "rfc3339.h"
#include "store.h"
#include "token.h"

#define SIGN_TTL_DEF 3600000LL /* token sign: an hour (or less, if the limit is) */

int
cmd_token_create(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"label", required_argument, NULL, 'l'},
	                                   {"expires", required_argument, NULL, 'e'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	char token[TOKEN_API_LEN + 1], created[RFC3339_BUFSIZE], expires[RFC3339_BUFSIZE];
	unsigned char hash[TOKEN_HASH_LEN];
	const char *label = NULL, *exp, *error;
	long long expires_ms = 0;
	struct store_token tok;
	char *user;
	int ch;

	optind = 0;
	while ((ch = ctl_next_opt(ctl, argc, argv, "", lo)) != -1) {
		if (ch == 'l')
			label = ctl_arg_text("--label", optarg, LABEL_MAX);
		else if (ch == 'e')
			expires_ms = ctl_arg_duration("--expires", optarg);
	}
	ctl_operands(argc, 1, 1);
	user = ctl_arg_user(argv[optind]);

	token_api_new(token);
	token_sha256(token, TOKEN_API_LEN, hash);
	if (store_token_create(ctl_db(ctl), user, hash, TOKEN_HASH_LEN, label, expires_ms, &tok,
	                       &error) < 0)
		msg_fatal("token create: %s", error);
	ctl_time_text(tok.created_ms, created);
	exp = ctl_time_text(tok.expires_ms, expires);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "id", json_object_new_int64(tok.id));
		json_object_object_add(doc, "user", json_object_new_string(user));
		json_object_object_add(doc, "label", label ? json_object_new_string(label) : NULL);
		json_object_object_add(doc, "token", json_object_new_string(token));
		json_object_object_add(doc, "created", json_object_new_string(created));
		json_object_object_add(doc, "expires", exp ? json_object_new_string(exp) : NULL);
		ctl_print_json(doc);
		json_object_put(doc);
	} else {
		/* the token alone on stdout, so that TOKEN=$(statusctl token create ...) works */
		printf("%s\n", token);
		fprintf(stderr,
		        "statusctl: made API token %lld for %s, %s%s; it is shown only now "
		        "(msgstatus keeps only its SHA-256)\n",
		        (long long)tok.id, user, exp ? "expires " : "does not expire",
		        exp ? exp : "");
	}
	free(tok.user);
	free(tok.label);
	explicit_bzero(token, sizeof(token));
	free(user);
	return 0;
}

int
cmd_token_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct store_token *toks;
	const char *error;
	char *user = NULL;
	size_t n;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	ctl_operands(argc, 0, 1);
	if (optind < argc)
		user = ctl_arg_user(argv[optind]);
	if (store_token_list(ctl_db(ctl), user, &toks, &n, &error) < 0)
		msg_fatal("token list: %s", error);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(), *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			struct json_object *t = json_object_new_object();
			json_object_object_add(t, "id", json_object_new_int64(toks[i].id));
			json_object_object_add(t, "user", json_object_new_string(toks[i].user));
			json_object_object_add(t, "label",
			                       toks[i].label ? json_object_new_string(toks[i].label)
			                                     : NULL);
			ctl_json_add_time(t, "created", toks[i].created_ms);
			ctl_json_add_time(t, "expires", toks[i].expires_ms);
			ctl_json_add_time(t, "revoked", toks[i].revoked_ms);
			json_object_object_add(t, "state", json_object_new_string(toks[i].state));
			json_object_array_add(arr, t);
		}
		json_object_object_add(doc, "tokens", arr);
		ctl_print_json(doc);
		json_object_put(doc);
	} else if (n == 0) {
		printf("no API tokens%s%s\n", user ? " for " : "", user ? user : "");
	} else {
		printf("%-6s %-32s %-20s %-24s %-24s %s\n", "ID", "USER", "LABEL", "CREATED",
		       "EXPIRES", "REVOKED");
		for (size_t i = 0; i < n; i++) {
			char b1[RFC3339_BUFSIZE], b2[RFC3339_BUFSIZE], b3[RFC3339_BUFSIZE];
			char u[TOKEN_USER_MAX + 8], l[LABEL_MAX + 8], id[32];
			const char *expires = ctl_time_text(toks[i].expires_ms, b2);
			const char *revoked = ctl_time_text(toks[i].revoked_ms, b3);
			snprintf(id, sizeof(id), "%lld", (long long)toks[i].id);
			printf("%-6s %-32s %-20s %-24s %-24s %s\n", id,
			       ctl_clean(toks[i].user, u, sizeof(u)),
			       toks[i].label ? ctl_clean(toks[i].label, l, sizeof(l)) : "-",
			       ctl_time_text(toks[i].created_ms, b1), expires ? expires : "never",
			       revoked ? revoked : "-");
		}
	}
	store_tokens_free(toks, n);
	free(user);
	return 0;
}

int
cmd_token_revoke(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char *end, *owner, u[TOKEN_USER_MAX + 8];
	const char *error;
	long long id;
	bool already = false;
	int found;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	ctl_operands(argc, 1, 1);
	errno = 0;
	id = strtoll(argv[optind], &end, 10);
	if (argv[optind][0] < '0' || argv[optind][0] > '9' || *end != '\0' || errno != 0 || id <= 0)
		ctl_usage("\"%s\" is not a token id (see statusctl token list)", argv[optind]);
	if ((found = store_token_revoke(ctl_db(ctl), id, &owner, &already, &error)) < 0)
		msg_fatal("token revoke: %s", error);
	if (found == 0) {
		fprintf(stderr, "statusctl: no API token with id %lld\n", id);
		return EXIT_NOTFOUND;
	}
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "id", json_object_new_int64(id));
		json_object_object_add(doc, "user", json_object_new_string(owner));
		json_object_object_add(doc, "revoked", json_object_new_boolean(1));
		json_object_object_add(doc, "already_revoked", json_object_new_boolean(already));
		ctl_print_json(doc);
		json_object_put(doc);
	} else if (already)
		printf("API token %lld of %s was already revoked\n", id,
		       ctl_clean(owner, u, sizeof(u)));
	else
		printf("revoked API token %lld of %s (a running statusd may accept it for up to "
		       "a minute more)\n",
		       id, ctl_clean(owner, u, sizeof(u)));
	free(owner);
	return 0;
}

int
cmd_token_sign(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"ttl", required_argument, NULL, 't'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	long long ttl_ms = 0, max = ctl->cfg.auth_token_max_lifetime;
	unsigned char *secret = NULL;
	size_t secret_len = 0;
	const char *error;
	char *user, *jwt, exp_text[RFC3339_BUFSIZE];
	int64_t now_s;
	int ch;

	optind = 0;
	while ((ch = ctl_next_opt(ctl, argc, argv, "", lo)) != -1)
		if (ch == 't')
			ttl_ms = ctl_arg_duration("--ttl", optarg);
	ctl_operands(argc, 1, 1);
	user = ctl_arg_user(argv[optind]);
	if (ttl_ms == 0)
		ttl_ms = SIGN_TTL_DEF < max ? SIGN_TTL_DEF : max;
	if (ttl_ms < 1000)
		ctl_usage("--ttl: at least one second");
	if (ttl_ms > max)
		ctl_usage("--ttl: longer than auth_token_max_lifetime (%llds), which "
		          "statusd would refuse",
		          max / 1000);
	if (ctl->cfg.auth_secret_file[0] == '\0')
		msg_fatal("token sign: auth_secret_file is not set in %s",
		          ctl->config ? ctl->config : "the configuration");
	if (token_secret_load("auth_secret_file", ctl->cfg.auth_secret_file, &secret, &secret_len,
	                      &error) < 0)
		msg_fatal("token sign: %s", error);
	now_s = time_now_ms() / 1000;
	jwt = token_jwt_sign(user, now_s, now_s + ttl_ms / 1000, secret, secret_len);
	token_secret_free(&secret, secret_len);
	rfc3339_format((now_s + ttl_ms / 1000) * 1000, exp_text);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "user", json_object_new_string(user));
		json_object_object_add(doc, "token", json_object_new_string(jwt));
		json_object_object_add(doc, "expires", json_object_new_string(exp_text));
		ctl_print_json(doc);
		json_object_put(doc);
	} else
		printf("%s\n", jwt);
	free(jwt);
	free(user);
	return 0;
}

/* --- users and preferences ----------------------------------------------------------- */

int
cmd_user_show(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	char created[RFC3339_BUFSIZE], *user;
	struct store_user u = {0};
	const char *error;
	int found, rc = 0;

	optind = 0;
	ctl_next_opt(ctl, argc, argv, "", lo);
	ctl_operands(argc, 1, 1);
	user = ctl_arg_user(argv[optind]);
	if ((found = store_user_get(ctl_db(ctl), user, &u, &error)) < 0)
		msg_fatal("user show: %s", error);
	if (found == 0) {
		fprintf(stderr,
		        "statusctl: no user %s (token create, prefs and user admin create one)\n",
		        user);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	ctl_time_text(u.created_ms, created);
	if (ctl->json) {
		struct json_object *doc = json_object_new_object(),
		                   *admins = json_object_new_array();
		for (size_t i = 0; i < u.ndomains; i++)
			json_object_array_add(admins, json_object_new_string(u.domains[i]));
		json_object_object_add(doc, "user", json_object_new_string(user));
		json_object_object_add(doc, "read_receipts",
		                       json_object_new_boolean(u.read_receipts));
		json_object_object_add(doc, "presence", json_object_new_boolean(u.presence));
		json_object_object_add(doc, "domain_admin", admins);
		json_object_object_add(doc, "api_tokens", json_object_new_int64(u.api_tokens));
		json_object_object_add(doc, "created", json_object_new_string(created));
		ctl_print_json(doc);
		json_object_put(doc);
	} else {
		struct mbuf list = MBUF_INIT;
		char d[DOMAIN_MAX + 8];
		for (size_t i = 0; i < u.ndomains; i++)
			mbuf_printf(&list, "%s%s", i ? ", " : "",
			            ctl_clean(u.domains[i], d, sizeof(d)));
		printf("user           %s\n", user);
		printf("read receipts  %s\n", u.read_receipts ? "yes" : "no");
		printf("presence       %s\n", u.presence ? "yes" : "no");
		printf("admin of       %s\n", list.len ? mbuf_str(&list) : "-");
		printf("api tokens     %lld valid\n", (long long)u.api_tokens);
		printf("created        %s\n", created);
		mbuf_free(&list);
	}
out:
	store_strings_free(u.domains, u.ndomains);
	free(user);
	return rc;
}

int
cmd_user_admin(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"clear", no_argument, NULL, 'x'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	struct mbuf shown = MBUF_INIT;
	char **domains = NULL, *user;
	const char *error;
	struct json_object *doc;
	bool clear = false;
	size_t n = 0;
	int ch, rc;

	optind = 0;
	while ((ch = ctl_next_opt(ctl, argc, argv, "", lo)) != -1)
		if (ch == 'x')
			clear = true;
	ctl_operands(argc, 1, -1);
	if (clear && argc - optind > 1)
		ctl_usage("--clear takes no domains");
	if (!clear && argc - optind < 2)
		ctl_usage("name the domains (or --clear)");
	user = ctl_arg_user(argv[optind]);
	doc = json_object_new_array();
	mbuf_putc(&shown, '{');
	for (int i = optind + 1; i < argc; i++) {
		char *d = ctl_arg_domain(argv[i]);
		bool seen = false;
		for (size_t k = 0; k < n; k++)
			seen |= strcmp(domains[k], d) == 0;
		if (seen) {
			free(d);
			continue;
		}
		mbuf_printf(&shown, "%s%s", n ? "," : "", d);
		json_object_array_add(doc, json_object_new_string(d));
		domains = myreallocarray(domains, n + 1, sizeof(*domains));
		domains[n++] = d;
	}
	mbuf_putc(&shown, '}');
	rc = clear ? store_user_admin_clear(ctl_db(ctl), user, &error)
	           : store_user_admin_set(ctl_db(ctl), user, domains, n, &error);
	if (rc < 0)
		msg_fatal("user admin: %s", error);
	if (ctl->json) {
		struct json_object *out = json_object_new_object();
		json_object_object_add(out, "user", json_object_new_string(user));
		json_object_object_add(out, "domain_admin", json_object_get(doc));
		ctl_print_json(out);
		json_object_put(out);
	} else if (clear)
		printf("%s administers no domains\n", user);
	else
		printf("%s administers %s\n", user, mbuf_str(&shown));
	json_object_put(doc);
	mbuf_free(&shown);
	store_strings_free(domains, n);
	free(user);
	return 0;
}

int
cmd_prefs(struct ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {{"read-receipts", required_argument, NULL, 'r'},
	                                   {"presence", required_argument, NULL, 'p'},
	                                   {"mdn", required_argument, NULL, 'm'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	int receipts = -1, presence = -1, ch;
	struct store_prefs prefs;
	const char *error, *mdn = NULL;
	bool transient;
	char *user;

	optind = 0;
	while ((ch = ctl_next_opt(ctl, argc, argv, "", lo)) != -1) {
		if (ch == 'r')
			receipts = ctl_arg_bool("--read-receipts", optarg);
		else if (ch == 'p')
			presence = ctl_arg_bool("--presence", optarg);
		else if (ch == 'm') {
			if (strcmp(optarg, "never") != 0 && strcmp(optarg, "always") != 0 &&
			    strcmp(optarg, "default") != 0)
				ctl_usage("--mdn: expected never, always or default, not \"%s\"",
				          optarg);
			mdn = optarg;
		}
	}
	ctl_operands(argc, 1, 1);
	user = ctl_arg_user(argv[optind]);
	if ((receipts >= 0 || presence >= 0 || mdn != NULL) &&
	    store_prefs_set(ctl_db(ctl), user, receipts, presence, mdn, &transient, &error) < 0)
		msg_fatal("prefs: %s", error);
	if (store_prefs_get(ctl_db(ctl), user, &prefs, &transient, &error) < 0)
		msg_fatal("prefs: %s", error);
	if (ctl->json) {
		struct json_object *doc = render_prefs(user, &prefs);
		ctl_print_json(doc);
		json_object_put(doc);
	} else {
		printf("user           %s\n", user);
		printf("read receipts  %s\n", prefs.read_receipts ? "yes" : "no");
		printf("presence       %s\n", prefs.presence ? "yes" : "no");
		printf("mdn            %s\n", prefs.mdn != NULL ? prefs.mdn : "default");
	}
	free(user);
	return 0;
}
