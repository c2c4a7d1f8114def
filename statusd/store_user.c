/*
 * store_user - users, the domains they administer, and their API tokens: what auth.c
 * asks when a token or a signed token's user comes in, and what statusctl's token and
 * user commands change. See store.h.
 *
 * DESIGN
 *	A token is found by its SHA-256 (token_hash); the token itself is never stored. A
 *	user's row is made by the first thing that needs it (a token, a preference, a domain).
 *	users.domain_admin is read as PostgreSQL's text output of a text[] and parsed here
 *	into strings, at most ADMIN_MAX of them.
 *
 * SECURITY
 *	A token's hash reaches SQL as a binary parameter, names and labels as text
 *	parameters; the callers check them first (token.h, statusctl). A domain_admin that
 *	does not parse is an error, never a partial grant.
 *
 * DIAGNOSTICS
 *	1/0/-1 or 0/-1 with a one-line *error_r, as store.h says; errors of the statements
 *	statusctl runs say when the schema looks missing.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "store_int.h"

#define ADMIN_MAX 1000 /* domains per user */
#define BYTEAOID  17

/* A failed statement of statusctl's: the error, with a hint when the schema is missing. */
static int
ctl_failed(PGconn *conn, PGresult *res, const char **error_r)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *error = store_error(conn, res);

	if (state != NULL && (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0))
		error = errfmt("%s (is the schema in place? run statusctl migrate)", error);
	*error_r = error;
	PQclear(res);
	return -1;
}

/* Run a statement with text parameters for statusctl; the result, or NULL and *error_r. */
static PGresult *
ctl_exec(PGconn *conn, const char *sql, int n, const char *const *params, const char **error_r)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
		ctl_failed(conn, res, error_r);
		return NULL;
	}
	return res;
}

static int64_t
get_ms(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

void
store_strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * A one-dimensional text[] in PostgreSQL's text output ("{a.org,\"b c\",NULL}") into
 * strings (lower-cased if lower), NULLs and empty strings left out. 0 or -1 if it is not
 * one.
 */
static int
parse_text_array(const char *s, bool lower, char ***v_r, size_t *n_r)
{
	struct mbuf item = MBUF_INIT;
	char **v = NULL;
	size_t n = 0;
	int rc = -1;

	if (*s++ != '{')
		goto out;
	if (s[0] == '}') {
		rc = s[1] == '\0' ? 0 : -1;
		goto out;
	}
	for (;;) {
		bool quoted = *s == '"';
		mbuf_reset(&item);
		if (quoted) {
			for (s++; *s != '"'; s++) {
				if (*s == '\\')
					s++;
				if (*s == '\0')
					goto out;
				mbuf_putc(&item, *s);
			}
			s++;
		} else {
			while (*s != '\0' && *s != ',' && *s != '}')
				mbuf_putc(&item, *s++);
		}
		if (item.len > 0 && (quoted || strcasecmp(mbuf_str(&item), "NULL") != 0) &&
		    n < ADMIN_MAX) {
			v = myreallocarray(v, n + 1, sizeof(char *));
			v[n] = mystrdup(mbuf_str(&item));
			for (char *p = v[n]; lower && *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			n++;
		}
		if (*s == ',') {
			s++;
			continue;
		}
		if (s[0] == '}' && s[1] == '\0')
			rc = 0;
		break;
	}
out:
	mbuf_free(&item);
	if (rc < 0) {
		store_strings_free(v, n);
		return -1;
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

/* The domains of a users.domain_admin column, lower-cased; 0 or -1 with *error_r. */
static int
admin_domains(PGresult *res, int row, int col, char ***v_r, size_t *n_r, const char **error_r)
{
	if (parse_text_array(PQgetvalue(res, row, col), true, v_r, n_r) < 0) {
		*error_r = "users.domain_admin is not a text[]";
		return -1;
	}
	return 0;
}

int
store_token_find(PGconn *conn, const unsigned char *hash, size_t hash_len, char **name_r,
                 char ***domains_r, size_t *ndomains_r, int64_t *expires_ms_r, bool *transient_r,
                 const char **error_r)
{
	const char *values[1] = {(const char *)hash};
	const int lengths[1] = {(int)hash_len}, formats[1] = {1};
	const Oid types[1] = {BYTEAOID};
	PGresult *res;
	int rc = 0;

	*transient_r = false;
	res = PQexecParams(conn,
	                   "SELECT u.name, u.domain_admin, (extract(epoch FROM t.expires_at) * "
	                   "1000)::bigint"
	                   " FROM api_tokens t JOIN users u ON u.name = t.username"
	                   " WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
	                   " AND (t.expires_at IS NULL OR t.expires_at > now())",
	                   1, types, values, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if (PQntuples(res) > 0) {
		rc = admin_domains(res, 0, 1, domains_r, ndomains_r, error_r) < 0 ? -1 : 1;
		if (rc > 0) {
			*name_r = mystrdup(PQgetvalue(res, 0, 0));
			*expires_ms_r = PQgetisnull(res, 0, 2) ? INT64_MAX : get_ms(res, 0, 2);
		}
	}
	PQclear(res);
	return rc;
}

int
store_user_domains(PGconn *conn, const char *user, char ***domains_r, size_t *ndomains_r,
                   bool *transient_r, const char **error_r)
{
	const char *params[1] = {user};
	PGresult *res;
	int rc = 0;

	*transient_r = false;
	res = PQexecParams(conn, "SELECT name, domain_admin FROM users WHERE name = $1", 1, NULL,
	                   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return store_failed(conn, res, transient_r, error_r);
	if (PQntuples(res) > 0)
		rc = admin_domains(res, 0, 1, domains_r, ndomains_r, error_r) < 0 ? -1 : 1;
	PQclear(res);
	return rc;
}

int
store_user_get(PGconn *conn, const char *user, struct store_user *u_r, const char **error_r)
{
	const char *params[1] = {user};
	PGresult *res;

	if ((res = ctl_exec(conn,
	                    "SELECT u.read_receipts, u.presence, u.domain_admin,"
	                    " (extract(epoch FROM u.created_at) * 1000)::bigint,"
	                    " (SELECT count(*) FROM api_tokens t WHERE t.username = u.name"
	                    "  AND t.revoked_at IS NULL"
	                    "  AND (t.expires_at IS NULL OR t.expires_at > now()))"
	                    " FROM users u WHERE u.name = $1",
	                    1, params, error_r)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	u_r->read_receipts = PQgetvalue(res, 0, 0)[0] == 't';
	u_r->presence = PQgetvalue(res, 0, 1)[0] == 't';
	if (parse_text_array(PQgetvalue(res, 0, 2), false, &u_r->domains, &u_r->ndomains) < 0) {
		PQclear(res);
		*error_r = "users.domain_admin is not a text[]";
		return -1;
	}
	u_r->created_ms = get_ms(res, 0, 3);
	u_r->api_tokens = get_ms(res, 0, 4);
	PQclear(res);
	return 1;
}

int
store_user_admin_set(PGconn *conn, const char *user, char *const *domains, size_t n,
                     const char **error_r)
{
	struct mbuf array = MBUF_INIT;
	const char *params[2] = {user, NULL};
	PGresult *res;

	store_text_array(&array, domains, n);
	params[1] = mbuf_str(&array);
	res = ctl_exec(conn,
	               "INSERT INTO users (name, domain_admin) VALUES ($1, $2::text[])"
	               " ON CONFLICT (name) DO UPDATE SET domain_admin = EXCLUDED.domain_admin",
	               2, params, error_r);
	mbuf_free(&array);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
store_user_admin_clear(PGconn *conn, const char *user, const char **error_r)
{
	const char *params[1] = {user};
	PGresult *res;

	if ((res = ctl_exec(conn, "UPDATE users SET domain_admin = '{}' WHERE name = $1", 1, params,
	                    error_r)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
store_token_create(PGconn *conn, const char *user, const unsigned char *hash, size_t hash_len,
                   const char *label, int64_t lifetime_ms, struct store_token *tok_r,
                   const char **error_r)
{
	char lifetime[32];
	const char *p1[1] = {user};
	const char *p2[4] = {user, (const char *)hash, label, lifetime_ms ? lifetime : NULL};
	const int lens[4] = {0, (int)hash_len, 0, 0}, fmts[4] = {0, 1, 0, 0};
	const Oid types[4] = {0, BYTEAOID, 0, 0};
	PGresult *res;

	snprintf(lifetime, sizeof(lifetime), "%lld", (long long)lifetime_ms);
	if ((res = ctl_exec(conn, "BEGIN", 0, NULL, error_r)) == NULL)
		return -1;
	PQclear(res);
	if ((res = ctl_exec(conn,
	                    "INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", 1,
	                    p1, error_r)) == NULL)
		goto fail;
	PQclear(res);
	res = PQexecParams(conn,
	                   "INSERT INTO api_tokens (username, token_hash, label, expires_at)"
	                   " VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')"
	                   " RETURNING id, (extract(epoch FROM created_at) * 1000)::bigint,"
	                   " (extract(epoch FROM expires_at) * 1000)::bigint",
	                   4, types, p2, lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ctl_failed(conn, res, error_r);
		goto fail;
	}
	memset(tok_r, 0, sizeof(*tok_r));
	tok_r->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	tok_r->created_ms = get_ms(res, 0, 1);
	tok_r->expires_ms = get_ms(res, 0, 2);
	PQclear(res);
	if ((res = ctl_exec(conn, "COMMIT", 0, NULL, error_r)) == NULL)
		goto fail;
	PQclear(res);
	tok_r->user = mystrdup(user);
	tok_r->label = label ? mystrdup(label) : NULL;
	tok_r->state = "valid";
	return 0;
fail:
	store_rollback(conn);
	return -1;
}

void
store_tokens_free(struct store_token *toks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(toks[i].user);
		free(toks[i].label);
	}
	free(toks);
}

int
store_token_list(PGconn *conn, const char *user, struct store_token **toks_r, size_t *n_r,
                 const char **error_r)
{
	const char *params[1] = {user};
	struct store_token *toks;
	PGresult *res;
	int n;

	if ((res = ctl_exec(conn,
	                    "SELECT id, username, label,"
	                    " (extract(epoch FROM created_at) * 1000)::bigint,"
	                    " (extract(epoch FROM expires_at) * 1000)::bigint,"
	                    " (extract(epoch FROM revoked_at) * 1000)::bigint,"
	                    " CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
	                    " WHEN expires_at <= now() THEN 'expired' ELSE 'valid' END"
	                    " FROM api_tokens WHERE $1::text IS NULL OR username = $1 ORDER BY id",
	                    1, params, error_r)) == NULL)
		return -1;
	n = PQntuples(res);
	toks = mycalloc((size_t)n + 1, sizeof(*toks));
	for (int i = 0; i < n; i++) {
		const char *state = PQgetvalue(res, i, 6);

		toks[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		toks[i].user = mystrdup(PQgetvalue(res, i, 1));
		toks[i].label = store_get_str(res, i, 2);
		toks[i].created_ms = get_ms(res, i, 3);
		toks[i].expires_ms = get_ms(res, i, 4);
		toks[i].revoked_ms = get_ms(res, i, 5);
		toks[i].state = strcmp(state, "revoked") == 0   ? "revoked"
		                : strcmp(state, "expired") == 0 ? "expired"
		                                                : "valid";
	}
	PQclear(res);
	*toks_r = toks;
	*n_r = (size_t)n;
	return 0;
}

int
store_token_revoke(PGconn *conn, int64_t id, char **user_r, bool *already_r, const char **error_r)
{
	char idtext[32];
	const char *params[1] = {idtext};
	PGresult *res;

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	if ((res = ctl_exec(conn,
	                    "WITH r AS (UPDATE api_tokens SET revoked_at = now()"
	                    " WHERE id = $1 AND revoked_at IS NULL RETURNING username)"
	                    " SELECT username, false FROM r"
	                    " UNION ALL SELECT username, true FROM api_tokens"
	                    " WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM r)",
	                    1, params, error_r)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	*user_r = mystrdup(PQgetvalue(res, 0, 0));
	*already_r = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	return 1;
}
