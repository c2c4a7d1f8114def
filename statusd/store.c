/*
 * store - statusd's and statusctl's work in PostgreSQL. See store.h and sql/.
 *
 * SECURITY
 *	Event data reaches SQL only through COPY (escaped in store_copy_row, the one place
 *	that does it) or as query parameters. Migration files come from sql_dir, which is
 *	trusted like the configuration. Event text read back for the feeds is escaped by
 *	jsonstr_append; a details object is copied only if jsonstr_compact finds it in the
 *	form json-c would print, and goes through json-c otherwise.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstr.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "status.h"

#define MIGRATION_LOCK     "7201650101" /* pg_advisory_lock key: "msgstatus migrate" */
#define MIGRATION_FILE_MAX (1024 * 1024)
#define MIGRATIONS_MAX     999

bool
store_transient(PGconn *conn, const PGresult *res)
{
	const char *state;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK || res == NULL)
		return true;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		return true; /* failed on the client side: the connection broke */
	return strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 ||
	       strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0;
}

const char *
store_error(PGconn *conn, const PGresult *res)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;
	char buf[400];
	size_t n;

	if (m == NULL || *m == '\0')
		m = conn ? PQerrorMessage(conn) : "no connection";
	snprintf(buf, sizeof(buf), "%s", m);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	return errfmt("%s", buf);
}

/* Run a command that returns no rows; 0 or -1 with the error. */
static int
exec_cmd(PGconn *conn, const char *sql, bool *transient_r, const char **error_r)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		if (transient_r)
			*transient_r = store_transient(conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Roll back whatever is open, ignoring errors (the connection may be gone). */
static void
rollback(PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

int
store_schema_version(PGconn *conn, const char **error_r)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_version");
	int version = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		version = atoi(PQgetvalue(res, 0, 0));
	else if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "", "42P01") == 0)
		version = 0; /* no schema_version table: an empty database */
	else
		*error_r = store_error(conn, res);
	PQclear(res);
	return version;
}

struct migration {
	int version;
	char *name;
};

static int
migration_cmp(const void *a, const void *b)
{
	return ((const struct migration *)a)->version - ((const struct migration *)b)->version;
}

/* "NNN_name.sql" -> version NNN; -1 for other names. */
static int
migration_version(const char *name)
{
	size_t len = strlen(name);

	if (len < 9 || strcmp(name + len - 4, ".sql") != 0 || name[3] != '_')
		return -1;
	for (int i = 0; i < 3; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	for (size_t i = 4; i < len - 4; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_'))
			return -1;
	return atoi(name);
}

static int
read_file(const char *path, struct mbuf *out, const char **error_r)
{
	char chunk[8192];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL) {
		*error_r = errfmt("open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
		mbuf_append(out, chunk, n);
		if (out->len > MIGRATION_FILE_MAX) {
			fclose(fp);
			*error_r = errfmt("%s: larger than %d bytes", path, MIGRATION_FILE_MAX);
			return -1;
		}
	}
	if (ferror(fp)) {
		*error_r = errfmt("read %s: %s", path, strerror(errno));
		fclose(fp);
		return -1;
	}
	fclose(fp);
	return 0;
}

/* The migrations in dir, sorted and checked to be numbered 1..n; count in *n_r. */
static struct migration *
list_migrations(const char *dir, int *n_r, const char **error_r)
{
	struct migration *list = NULL;
	struct dirent *de;
	int n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		*error_r = errfmt("sql_dir %s: %s", dir, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		int v = migration_version(de->d_name);
		if (v < 0)
			continue;
		if (n >= MIGRATIONS_MAX)
			break;
		list = myreallocarray(list, (size_t)n + 1, sizeof(*list));
		list[n].name = mystrdup(de->d_name);
		list[n++].version = v;
	}
	closedir(d);
	if (n > 1)
		qsort(list, (size_t)n, sizeof(*list), migration_cmp);
	for (int i = 0; i < n; i++)
		if (list[i].version != i + 1) {
			*error_r = errfmt("sql_dir %s: migrations must be numbered 001, 002, ... "
			                  "without gaps; found %s",
			                  dir, list[i].name);
			for (int j = 0; j < n; j++)
				free(list[j].name);
			free(list);
			return NULL;
		}
	if (n == 0) {
		*error_r = errfmt("sql_dir %s: no migrations (NNN_name.sql) found", dir);
		free(list);
		return NULL;
	}
	*n_r = n;
	return list;
}

int
store_migrate(PGconn *conn, const char *sql_dir, bool *transient_r, const char **error_r)
{
	struct migration *list;
	int n = 0, current, rc = -1;

	*transient_r = false;
	if ((list = list_migrations(sql_dir, &n, error_r)) == NULL)
		return -1;
	if (exec_cmd(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", transient_r, error_r) < 0)
		goto out;
	if (exec_cmd(conn,
	             "SET client_min_messages = warning;"
	             "CREATE TABLE IF NOT EXISTS schema_version ("
	             " version int PRIMARY KEY, name text NOT NULL,"
	             " applied_at timestamptz NOT NULL DEFAULT now())",
	             transient_r, error_r) < 0)
		goto unlock;
	if ((current = store_schema_version(conn, error_r)) < 0) {
		*transient_r = true;
		goto unlock;
	}
	if (current > n) {
		*error_r = errfmt("the database has schema version %d, newer than this program's "
		                  "%d (sql_dir %s): upgrade msgstatus",
		                  current, n, sql_dir);
		goto unlock;
	}
	for (int i = current; i < n; i++) {
		struct mbuf path = MBUF_INIT, sql = MBUF_INIT;
		const char *params[2];
		char vbuf[16];
		PGresult *res;
		int ok;

		mbuf_printf(&path, "%s/%s", sql_dir, list[i].name);
		ok = read_file(mbuf_str(&path), &sql, error_r) == 0 &&
		     exec_cmd(conn, "BEGIN", transient_r, error_r) == 0;
		if (ok && exec_cmd(conn, mbuf_str(&sql), transient_r, error_r) < 0) {
			*error_r = errfmt("%s: %s", mbuf_str(&path), *error_r);
			ok = 0;
		}
		if (ok) {
			snprintf(vbuf, sizeof(vbuf), "%d", list[i].version);
			params[0] = vbuf;
			params[1] = list[i].name;
			res = PQexecParams(
			        conn, "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
			        2, NULL, params, NULL, NULL, 0);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				*error_r = store_error(conn, res);
				*transient_r = store_transient(conn, res);
				ok = 0;
			}
			PQclear(res);
		}
		if (ok && exec_cmd(conn, "COMMIT", transient_r, error_r) < 0)
			ok = 0;
		mbuf_free(&sql);
		mbuf_free(&path);
		if (!ok) {
			rollback(conn);
			goto unlock;
		}
		msg_info("database schema migrated to version %d (%s)", list[i].version,
		         list[i].name);
	}
	rc = n;
unlock:
	if (PQstatus(conn) == CONNECTION_OK)
		PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")"));
out:
	for (int i = 0; i < n; i++)
		free(list[i].name);
	free(list);
	return rc;
}

int
store_session_setup(PGconn *conn, const char **error_r)
{
	return exec_cmd(conn,
	                "SET client_min_messages = warning;"
	                "SET application_name = 'statusd';"
	                "SET TIME ZONE 'UTC';"
	                "SELECT msgstatus_session_setup()",
	                NULL, error_r);
}

int
store_maintain(PGconn *conn, long long retention_ms, const char **error_r)
{
	char ms[32];
	const char *params[1] = {ms};
	PGresult *res;
	int rc = 0;

	snprintf(ms, sizeof(ms), "%lld", retention_ms);
	res = PQexecParams(conn, "SELECT msgstatus_maintain($1::bigint * interval '1 millisecond')",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* COPY text format: escape backslash and the delimiters; NULL is \N. */
static void
copy_field(struct mbuf *copy, const char *s)
{
	const char *run = s;

	if (s == NULL) {
		mbuf_append(copy, "\\N", 2);
		return;
	}
	for (; *s; s++) {
		const char *esc;
		switch (*s) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		mbuf_append(copy, run, (size_t)(s - run));
		mbuf_append(copy, esc, 2);
		run = s + 1;
	}
	mbuf_append(copy, run, (size_t)(s - run));
}

void
store_copy_row(struct mbuf *copy, int seq, const struct msevent *ev)
{
	char when[RFC3339_BUFSIZE];
	int64_t key = MSEV_IS_RECIPIENT(ev->type) ? status_event_key(ev->type, ev->time_ms) : 0;
	enum status_axis axis = status_axis(ev->type);

	mbuf_printf(copy, "%d\t", seq);
	copy_field(copy, ev->id);
	mbuf_printf(copy, "\t%s\t%d\t%lld\t%lld\t", rfc3339_format(ev->time_ms, when),
	            (int)ev->type, axis == STATUS_AXIS_DELIVERY ? (long long)key : 0LL,
	            axis == STATUS_AXIS_READING ? (long long)key : 0LL);
	copy_field(copy, ev->source);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->tracking_id);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->queue_id);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->message_id);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->recipient);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->orig_recipient);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->sender);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->sasl_user);
	if (ev->size >= 0)
		mbuf_printf(copy, "\t%lld\t", (long long)ev->size);
	else
		mbuf_puts(copy, "\t\\N\t");
	copy_field(copy, ev->details ? json_object_to_json_string_ext(
	                                       ev->details, JSON_C_TO_STRING_PLAIN |
	                                                            JSON_C_TO_STRING_NOSLASHESCAPE)
	                             : NULL);
	/* the mailbox axis (schema 005): the expunge's key and the copies it counts */
	mbuf_printf(copy, "\t%lld\t%d\n", axis == STATUS_AXIS_MAILBOX ? (long long)key : 0LL,
	            MSEV_IS_RECIPIENT(ev->type) ? status_copies(ev->type, ev->source) : 0);
}

static char *
get_str(PGresult *res, int row, int col)
{
	char *s;

	if (PQgetisnull(res, row, col))
		return NULL;
	s = mystrdup(PQgetvalue(res, row, col));
	return s;
}

static struct store_logged *logged_from(PGresult *res, size_t *n_r);

void
store_logged_free(struct store_logged *logged, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(logged[i].event_id);
		free(logged[i].recipient);
		free(logged[i].details);
		free(logged[i].tracking_id);
		free(logged[i].message_id);
		free(logged[i].owner);
		free(logged[i].sender);
	}
	free(logged);
}

/* Whether a batch of store_copy_row() rows holds an event of type (its fourth field). */
static bool
copy_has_type(const struct mbuf *copy, enum msevent_type type)
{
	const char *p = copy->data, *end = p + copy->len;

	while (p != NULL && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *f = p;

		if (nl == NULL)
			nl = end;
		for (int i = 0; i < 3 && f != NULL; i++)
			if ((f = memchr(f, '\t', (size_t)(nl - f))) != NULL)
				f++;
		if (f != NULL && atoi(f) == (int)type)
			return true;
		p = nl + 1;
	}
	return false;
}

int
store_ingest(PGconn *conn, const struct mbuf *copy, struct store_logged **logged_r,
             size_t *nlogged_r, int64_t *head_r, int64_t *epoch_r, bool *transient_r,
             const char **error_r)
{
	struct store_logged *logged = NULL;
	PGresult *res;
	size_t nl = 0;
	int n = 0;

	*transient_r = false;
	*logged_r = NULL;
	*nlogged_r = 0;
	if (exec_cmd(conn, "BEGIN", transient_r, error_r) < 0)
		return -1;
	res = PQexec(conn, "COPY ingest_stage FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (PQputCopyData(conn, copy->data, (int)copy->len) != 1 || PQputCopyEnd(conn, NULL) != 1) {
		*error_r = store_error(conn, NULL);
		*transient_r = true;
		goto fail;
	}
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		goto fail;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	/* the inbound events (not statuses) leave the batch for their table (sql/007) */
	if (copy_has_type(copy, MSEV_INBOUND) &&
	    exec_cmd(conn, "SELECT msgstatus_inbound()", transient_r, error_r) < 0)
		goto fail;

	/* the columns of LOGGED_COLUMNS, in the same order, as text */
	res = PQexec(conn, "SELECT log_offset, event_id,"
	                   " (extract(epoch FROM event_time) * 1000)::bigint, type, recipient,"
	                   " details::text, message, tracking_id, message_id, owner, sender"
	                   " FROM msgstatus_ingest()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		goto fail;
	}
	logged = logged_from(res, &nl);
	n = (int)nl;
	PQclear(res);
	if (store_log_head(conn, head_r, epoch_r, error_r) < 0) {
		*transient_r = true;
		goto fail;
	}
	if (exec_cmd(conn, "COMMIT", transient_r, error_r) < 0) {
		store_logged_free(logged, (size_t)n);
		return -1;
	}
	*logged_r = logged;
	*nlogged_r = (size_t)n;
	return 0;
fail:
	store_logged_free(logged, (size_t)n);
	rollback(conn);
	return -1;
}

/*
 * The columns a struct store_logged is read from, in this order (see logged_row). The
 * ingest's result has them as text ((extract(epoch FROM event_time) * 1000)::bigint,
 * details::text); the log range query asks for them in binary, which spares PostgreSQL
 * the numeric arithmetic and the output functions of every row.
 */
#define LOGGED_COLUMNS                                                                             \
	"e.log_offset, e.event_id, e.event_time, e.type, e.rcpt, e.details, e.message,"            \
	" m.tracking_id, m.message_id, m.owner, m.sender"

#define PG_EPOCH_US  946684800000000LL /* 2000-01-01, where PostgreSQL's timestamps count from */
#define JSONB_FORMAT 1                 /* the version byte of jsonb's binary form */

static char *
borrow_str(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* A binary integer column of size bytes (2 or 8), big-endian and signed. */
static int64_t
binary_int(PGresult *res, int row, int col, int size)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
	uint64_t v = 0;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != size)
		msg_panic("store: column %d of the log is not a %d-byte integer", col, size);
	for (int i = 0; i < size; i++)
		v = v << 8 | p[i];
	if (size < 8 && (v >> (8 * size - 1)) != 0)
		v |= ~(uint64_t)0 << (8 * size); /* sign extension */
	return (int64_t)v;
}

/* A binary timestamptz as ms since 1970, rounded as (extract(epoch ...) * 1000)::bigint. */
static int64_t
binary_time_ms(PGresult *res, int row, int col)
{
	int64_t us, ms, rem;

	if (__builtin_add_overflow(binary_int(res, row, col, 8), PG_EPOCH_US, &us))
		us = INT64_MAX; /* 'infinity': no event has it (msevent checks the year) */
	ms = us / 1000;
	rem = us % 1000;
	if (rem >= 500)
		ms++;
	else if (rem <= -500)
		ms--;
	return ms;
}

/* A binary jsonb: its text follows the version byte (NULL for a version we do not know). */
static char *
binary_jsonb(PGresult *res, int row, int col)
{
	char *p = borrow_str(res, row, col);

	return p != NULL && PQgetlength(res, row, col) >= 1 && p[0] == JSONB_FORMAT ? p + 1 : NULL;
}

/*
 * Row i of a result with the columns of LOGGED_COLUMNS, as text or in binary (libpq ends
 * binary values with a NUL too, so text columns read the same); the strings point into res.
 */
static void
logged_row(PGresult *res, int i, struct store_logged *l)
{
	if (PQfformat(res, 0) == 1) {
		l->log_offset = binary_int(res, i, 0, 8);
		l->time_ms = binary_time_ms(res, i, 2);
		l->type = (int)binary_int(res, i, 3, 2);
		l->details = binary_jsonb(res, i, 5);
		l->message = binary_int(res, i, 6, 8);
	} else {
		l->log_offset = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		l->time_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		l->type = atoi(PQgetvalue(res, i, 3));
		l->details = borrow_str(res, i, 5);
		l->message = strtoll(PQgetvalue(res, i, 6), NULL, 10);
	}
	l->event_id = borrow_str(res, i, 1);
	l->recipient = borrow_str(res, i, 4);
	l->tracking_id = borrow_str(res, i, 7);
	l->message_id = borrow_str(res, i, 8);
	l->owner = borrow_str(res, i, 9);
	l->sender = borrow_str(res, i, 10);
}

static char *
dup_str(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = mystrdup(s);
	return d;
}

/* The rows of a result with the columns of LOGGED_COLUMNS, as malloc'd copies. */
static struct store_logged *
logged_from(PGresult *res, size_t *n_r)
{
	struct store_logged *logged = NULL;
	int n = PQntuples(res);

	if (n > 0)
		logged = mycalloc((size_t)n, sizeof(*logged));
	for (int i = 0; i < n; i++) {
		struct store_logged *l = &logged[i];
		logged_row(res, i, l);
		l->event_id = dup_str(l->event_id);
		l->recipient = dup_str(l->recipient);
		l->details = dup_str(l->details);
		l->tracking_id = dup_str(l->tracking_id);
		l->message_id = dup_str(l->message_id);
		l->owner = dup_str(l->owner);
		l->sender = dup_str(l->sender);
	}
	*n_r = (size_t)n;
	return logged;
}

/* A text[] literal of domain names. */
static void
text_array(struct mbuf *out, char *const *items, size_t n)
{
	mbuf_putc(out, '{');
	for (size_t i = 0; i < n; i++) {
		mbuf_printf(out, "%s\"", i ? "," : "");
		for (const char *p = items[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				mbuf_putc(out, '\\');
			mbuf_putc(out, *p);
		}
		mbuf_putc(out, '"');
	}
	mbuf_putc(out, '}');
}

/*
 * The domain of a sender, lowercased, as domain administrators are matched against it: what
 * follows the last '@', as principal_may_see() and the feeds take it (NULL without an '@').
 * The first '@' would give "example.com" for "x@example.com@example.net".
 */
#define SENDER_DOMAIN   "lower(substring(sender from '@([^@]*)$'))"
#define M_SENDER_DOMAIN "lower(substring(m.sender from '@([^@]*)$'))"

#define LOG_RANGE_STMT "msgstatus_log_range"
#define LOG_RANGE_SQL                                                                              \
	"SELECT " LOGGED_COLUMNS " FROM events e JOIN messages m ON m.id = e.message"              \
	" WHERE e.log_offset > $1::bigint AND e.log_offset <= $2::bigint"                          \
	" AND ($4::text IS NULL OR m.owner = $4"                                                   \
	"      OR " M_SENDER_DOMAIN " = ANY($5::text[]))"                                          \
	" ORDER BY e.log_offset LIMIT $3::int"

/* Whether a failed result is "no such prepared statement" (SQLSTATE 26000). */
static bool
no_such_statement(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return PQresultStatus(res) == PGRES_FATAL_ERROR && state != NULL &&
	       strcmp(state, "26000") == 0;
}

/*
 * The query of store_log_range and store_log_scan; the caller checks and clears it. A
 * catch-up asks it once per page, and planning it (the events partitions and their
 * indexes) cost as much as running it, so outside a transaction it is a prepared
 * statement of the connection, prepared the first time it is missing (a new connection).
 */
static PGresult *
log_range_query(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
                char *const *domains, size_t ndomains)
{
	struct mbuf dom = MBUF_INIT;
	char a[32], u[32], l[16];
	const char *params[5] = {a, u, l, user, NULL};
	PGresult *res;

	snprintf(a, sizeof(a), "%lld", (long long)after);
	snprintf(u, sizeof(u), "%lld", (long long)upto);
	snprintf(l, sizeof(l), "%d", limit);
	/* the domains as a PostgreSQL text[] literal; domain names need no quoting beyond this */
	text_array(&dom, domains, ndomains);
	params[4] = mbuf_str(&dom);
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		res = PQexecParams(conn, LOG_RANGE_SQL, 5, NULL, params, NULL, NULL, 1);
	else {
		res = PQexecPrepared(conn, LOG_RANGE_STMT, 5, params, NULL, NULL, 1);
		if (no_such_statement(res)) {
			PQclear(res);
			res = PQprepare(conn, LOG_RANGE_STMT, LOG_RANGE_SQL, 5, NULL);
			if (PQresultStatus(res) == PGRES_COMMAND_OK) {
				PQclear(res);
				res = PQexecPrepared(conn, LOG_RANGE_STMT, 5, params, NULL, NULL,
				                     1);
			}
		}
	}
	mbuf_free(&dom);
	return res;
}

int
store_log_range(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
                char *const *domains, size_t ndomains, struct store_logged **logged_r, size_t *n_r,
                bool *transient_r, const char **error_r)
{
	PGresult *res = log_range_query(conn, after, upto, limit, user, domains, ndomains);

	*transient_r = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	*logged_r = logged_from(res, n_r);
	PQclear(res);
	return 0;
}

int
store_log_scan(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
               char *const *domains, size_t ndomains,
               void (*fn)(void *ctx, const struct store_logged *l), void *ctx, size_t *n_r,
               bool *transient_r, const char **error_r)
{
	PGresult *res = log_range_query(conn, after, upto, limit, user, domains, ndomains);
	struct store_logged l;
	int n;

	*transient_r = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		logged_row(res, i, &l);
		fn(ctx, &l);
	}
	*n_r = (size_t)n;
	PQclear(res);
	return 0;
}

/* A details column as a JSON object: {} when NULL or not an object. */
static struct json_object *
details_object(const char *text)
{
	struct json_object *details = text != NULL ? json_tokener_parse(text) : NULL;

	if (details == NULL || !json_object_is_type(details, json_type_object)) {
		json_object_put(details);
		details = json_object_new_object();
	}
	return details;
}

/* A string member's value: the string or null. */
static void
put_json_str(struct mbuf *out, const char *s)
{
	if (s == NULL)
		mbuf_append(out, "null", 4);
	else
		jsonstr_append(out, s, strlen(s));
}

#define PUT_LIT(out, s) mbuf_append((out), (s), sizeof(s) - 1)

/* The details column as a JSON object: {} when NULL or not an object. */
static void
put_json_details(struct mbuf *out, const char *text)
{
	struct json_object *details;

	if (text == NULL) {
		PUT_LIT(out, "{}");
		return;
	}
	/* jsonb's text of a flat object needs only its spaces removed; anything else (which
	   the ingest does not store) is printed the way json-c prints it */
	if (jsonstr_compact(out, text, strlen(text)) == 0)
		return;
	details = details_object(text);
	mbuf_puts(out, json_object_to_json_string_ext(
	                       details, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(details);
}

void
store_logged_json(const struct store_logged *l, int64_t epoch, struct mbuf *out)
{
	char when[RFC3339_BUFSIZE];

	/* written directly, member for member as a json-c tree of them was printed */
	PUT_LIT(out, "{\"offset\":");
	mbuf_putll(out, l->log_offset);
	PUT_LIT(out, ",\"epoch\":");
	mbuf_putll(out, epoch);
	PUT_LIT(out, ",\"message_id\":");
	put_json_str(out, l->message_id);
	PUT_LIT(out, ",\"tracking_id\":");
	put_json_str(out, l->tracking_id);
	PUT_LIT(out, ",\"recipient\":");
	put_json_str(out, l->recipient);
	PUT_LIT(out, ",\"status\":");
	put_json_str(out, msevent_type_name((enum msevent_type)l->type));
	PUT_LIT(out, ",\"timestamp\":");
	put_json_str(out, rfc3339_format(l->time_ms, when));
	PUT_LIT(out, ",\"details\":");
	put_json_details(out, l->details);
	PUT_LIT(out, ",\"event_id\":");
	put_json_str(out, l->event_id);
	PUT_LIT(out, "}");
}

int
store_log_head(PGconn *conn, int64_t *head_r, int64_t *epoch_r, const char **error_r)
{
	PGresult *res = PQexec(conn, "SELECT head, epoch FROM log_head");
	int rc = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*head_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*epoch_r = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		rc = 0;
	} else
		*error_r = store_error(conn, res);
	PQclear(res);
	return rc;
}

static void
add_str(struct json_object *obj, const char *key, PGresult *res, int row, int col)
{
	json_object_object_add(obj, key,
	                       PQgetisnull(res, row, col)
	                               ? NULL
	                               : json_object_new_string(PQgetvalue(res, row, col)));
}

static void
add_time(struct json_object *obj, const char *key, int64_t ms)
{
	char when[RFC3339_BUFSIZE];

	json_object_object_add(obj, key,
	                       ms > 0 ? json_object_new_string(rfc3339_format(ms, when)) : NULL);
}

/* One recipient's entry in the status document, from a row of recipient, orig_recipient,
   dkey, rkey, displayed, details, xkey, copies. queued_ms is 0 if unknown. */
static struct json_object *
recipient_doc(PGresult *res, int row, int64_t queued_ms)
{
	struct json_object *r = json_object_new_object(), *details, *reply = NULL;
	struct status_state st = {0};
	struct status_view view;

	st.dkey = strtoll(PQgetvalue(res, row, 2), NULL, 10);
	st.rkey = strtoll(PQgetvalue(res, row, 3), NULL, 10);
	st.displayed = PQgetvalue(res, row, 4)[0] == 't';
	st.xkey = strtoll(PQgetvalue(res, row, 6), NULL, 10);
	st.copies = strtoll(PQgetvalue(res, row, 7), NULL, 10);
	status_view(&st, &view);

	details = details_object(PQgetisnull(res, row, 5) ? NULL : PQgetvalue(res, row, 5));
	if (json_object_object_get_ex(details, "smtp_reply", &reply))
		json_object_get(reply);
	json_object_object_del(details, "smtp_reply");
	json_object_object_del(details, "latency_ms");
	if (queued_ms > 0 && view.time_ms >= queued_ms)
		json_object_object_add(details, "latency_ms",
		                       json_object_new_int64(view.time_ms - queued_ms));

	add_str(r, "recipient", res, row, 0);
	if (!PQgetisnull(res, row, 1))
		add_str(r, "orig_recipient", res, row, 1);
	json_object_object_add(r, "status",
	                       view.status != MSEV_NONE
	                               ? json_object_new_string(msevent_type_name(view.status))
	                               : NULL);
	json_object_object_add(r, "delivered", json_object_new_string(view.delivered));
	json_object_object_add(r, "displayed", json_object_new_string(view.displayed));
	json_object_object_add(r, "smtp_reply", reply);
	add_time(r, "timestamp", view.time_ms);
	json_object_object_add(r, "details", details);
	return r;
}

/* One result as a failure of the call. */
static int
failed(PGconn *conn, PGresult *res, bool *transient_r, const char **error_r)
{
	*error_r = store_error(conn, res);
	*transient_r = store_transient(conn, res);
	PQclear(res);
	return -1;
}

/*
 * The "events" of a status document: the message's logged events in time order, from after
 * the cursor (a log offset of this message, 0 for the start), at most events_max, and
 * "next_cursor": where the next page starts, null on the last. A read, unread or deleted
 * that repeats its recipient's previous event changes nothing and is left out (a
 * recipient posting receipts in a loop adds one entry, not one per request); the test is
 * over the whole message, so pages do not change it.
 */
static int
timeline_events(PGconn *conn, const char *msgid, int events_max, int64_t after, int64_t queued_ms,
                struct json_object *doc, bool *transient_r, const char **error_r)
{
	char limit[16], cursor[32];
	const char *params[3] = {msgid, limit, cursor};
	struct json_object *list;
	PGresult *res;
	int n;

	snprintf(limit, sizeof(limit), "%d", events_max + 1);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)after);
	res = PQexecParams(conn,
	                   "WITH t AS (SELECT log_offset, event_time, type, rcpt, source, details,"
	                   "  event_id, lag(type) OVER (PARTITION BY rcpt"
	                   "   ORDER BY event_time, log_offset) AS prev"
	                   "  FROM events WHERE message = $1 AND log_offset IS NOT NULL)"
	                   " SELECT log_offset, (extract(epoch FROM event_time) * 1000)::bigint,"
	                   " type, rcpt, source, details::text, event_id FROM t"
	                   " WHERE (type NOT IN (7, 8, 9) OR prev IS DISTINCT FROM type)"
	                   " AND ($3::bigint = 0 OR (event_time, log_offset) >"
	                   "  (SELECT c.event_time, c.log_offset FROM events c"
	                   "   WHERE c.message = $1 AND c.log_offset = $3::bigint))"
	                   " ORDER BY event_time, log_offset LIMIT $2::int",
	                   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, transient_r, error_r);
	n = PQntuples(res) > events_max ? events_max : PQntuples(res);
	list = json_object_new_array_ext(n);
	for (int i = 0; i < n; i++) {
		struct json_object *ev = json_object_new_object();
		int64_t t = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		const char *type =
		        msevent_type_name((enum msevent_type)atoi(PQgetvalue(res, i, 2)));

		json_object_object_add(
		        ev, "offset",
		        json_object_new_int64(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
		add_str(ev, "recipient", res, i, 3);
		json_object_object_add(ev, "status", type ? json_object_new_string(type) : NULL);
		add_time(ev, "timestamp", t);
		if (queued_ms > 0 && t >= queued_ms)
			json_object_object_add(ev, "latency_ms",
			                       json_object_new_int64(t - queued_ms));
		add_str(ev, "source", res, i, 4);
		json_object_object_add(
		        ev, "details",
		        details_object(PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5)));
		add_str(ev, "event_id", res, i, 6);
		json_object_array_add(list, ev);
	}
	json_object_object_add(doc, "events", list);
	json_object_object_add(doc, "next_cursor",
	                       PQntuples(res) > events_max
	                               ? json_object_new_string(PQgetvalue(res, n - 1, 0))
	                               : NULL);
	PQclear(res);
	return 0;
}

int
store_status(PGconn *conn, const char *id, const char *user, char *const *domains, size_t ndomains,
             int events_max, int64_t events_after, struct json_object **doc_r, char **owner_r,
             char **sender_r, bool *transient_r, const char **error_r)
{
	struct mbuf bracketed = MBUF_INIT, dom = MBUF_INIT;
	const char *params[4];
	struct json_object *doc, *rcpts;
	char msgid[32];
	PGresult *res;
	int64_t queued_ms = 0;

	*transient_r = false;
	if (id[0] == '<')
		mbuf_puts(&bracketed, id);
	else
		mbuf_printf(&bracketed, "<%s>", id);
	text_array(&dom, domains, ndomains);
	params[0] = id;
	params[1] = mbuf_str(&bracketed);
	params[2] = user;
	params[3] = mbuf_str(&dom);
	/* the newest of the caller's: a Message-ID is chosen by whoever sends the mail */
	res = PQexecParams(conn,
	                   "SELECT id, tracking_id, message_id, sender, queue_id, size,"
	                   " (extract(epoch FROM queued_at) * 1000)::bigint, owner"
	                   " FROM messages WHERE (tracking_id = $1 OR message_id = $2)"
	                   " AND ($3::text IS NULL OR owner = $3"
	                   "      OR " SENDER_DOMAIN " = ANY($4::text[]))"
	                   " ORDER BY id DESC LIMIT 1",
	                   4, NULL, params, NULL, NULL, 0);
	mbuf_free(&bracketed);
	mbuf_free(&dom);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	doc = json_object_new_object();
	add_str(doc, "message_id", res, 0, 2);
	add_str(doc, "tracking_id", res, 0, 1);
	add_str(doc, "sender", res, 0, 3);
	add_str(doc, "queue_id", res, 0, 4);
	json_object_object_add(doc, "size",
	                       PQgetisnull(res, 0, 5) ? NULL
	                                              : json_object_new_int64(strtoll(
	                                                        PQgetvalue(res, 0, 5), NULL, 10)));
	if (!PQgetisnull(res, 0, 6))
		queued_ms = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	add_time(doc, "queued_at", queued_ms);
	snprintf(msgid, sizeof(msgid), "%s", PQgetvalue(res, 0, 0));
	if (owner_r != NULL)
		*owner_r = get_str(res, 0, 7);
	if (sender_r != NULL)
		*sender_r = get_str(res, 0, 3);
	PQclear(res);

	params[0] = msgid;
	res = PQexecParams(conn,
	                   "SELECT recipient, orig_recipient, dkey, rkey, displayed, details,"
	                   " xkey, copies FROM recipients WHERE message = $1 ORDER BY recipient",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		failed(conn, res, transient_r, error_r);
		goto fail;
	}
	rcpts = json_object_new_array_ext(PQntuples(res));
	for (int i = 0; i < PQntuples(res); i++)
		json_object_array_add(rcpts, recipient_doc(res, i, queued_ms));
	PQclear(res);
	json_object_object_add(doc, "recipients", rcpts);
	if (events_max > 0 && timeline_events(conn, msgid, events_max, events_after, queued_ms, doc,
	                                      transient_r, error_r) < 0)
		goto fail;
	*doc_r = doc;
	return 1;
fail:
	json_object_put(doc);
	if (owner_r != NULL) {
		free(*owner_r);
		*owner_r = NULL;
	}
	if (sender_r != NULL) {
		free(*sender_r);
		*sender_r = NULL;
	}
	return -1;
}

int
store_list(PGconn *conn, const char *user, char *const *domains, size_t ndomains,
           const struct store_list_filter *flt, struct json_object **doc_r, bool *transient_r,
           const char **error_r)
{
	struct mbuf dom = MBUF_INIT, ids = MBUF_INIT;
	char status[8], since[32], until[32], cursor[32], limit[16];
	const char *params[8];
	struct json_object *doc, *list, **msgs;
	PGresult *res;
	int n, more;

	*transient_r = false;
	text_array(&dom, domains, ndomains);
	snprintf(status, sizeof(status), "%d", flt->status);
	snprintf(since, sizeof(since), "%lld", (long long)flt->since_ms);
	snprintf(until, sizeof(until), "%lld", (long long)flt->until_ms);
	snprintf(cursor, sizeof(cursor), "%lld", (long long)flt->cursor);
	snprintf(limit, sizeof(limit), "%d", flt->limit + 1);
	params[0] = user;
	params[1] = mbuf_str(&dom);
	params[2] = status;
	params[3] = flt->recipient;
	params[4] = since;
	params[5] = until;
	params[6] = cursor;
	params[7] = limit;
	res = PQexecParams(
	        conn,
	        "SELECT m.id, m.tracking_id, m.message_id, m.sender,"
	        " (extract(epoch FROM m.queued_at) * 1000)::bigint"
	        " FROM messages m"
	        " WHERE (m.owner = $1 OR " M_SENDER_DOMAIN " = ANY($2::text[]))"
	        " AND m.queued_at IS NOT NULL"
	        /* keyset paging: after the cursor's message in (queued_at, id) order */
	        " AND ($7::bigint = 0 OR (m.queued_at, m.id) < (SELECT c.queued_at, c.id"
	        "      FROM messages c WHERE c.id = $7::bigint))"
	        " AND ($5::bigint = 0 OR m.queued_at >= to_timestamp($5::bigint / 1000.0))"
	        " AND ($6::bigint = 0 OR m.queued_at < to_timestamp($6::bigint / 1000.0))"
	        " AND ($3::int = 0 OR EXISTS (SELECT 1 FROM recipients r"
	        "      WHERE r.message = m.id AND r.status = $3::int))"
	        " AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM recipients r"
	        "      WHERE r.message = m.id AND r.recipient = lower($4::text)))"
	        " ORDER BY m.queued_at DESC, m.id DESC LIMIT $8::int",
	        8, NULL, params, NULL, NULL, 0);
	mbuf_free(&dom);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, transient_r, error_r);
	n = PQntuples(res);
	more = n > flt->limit;
	if (more)
		n = flt->limit;
	doc = json_object_new_object();
	list = json_object_new_array_ext(n);
	msgs = mycalloc((size_t)n + 1, sizeof(*msgs));
	mbuf_putc(&ids, '{');
	for (int i = 0; i < n; i++) {
		struct json_object *m = json_object_new_object();
		add_str(m, "tracking_id", res, i, 1);
		add_str(m, "message_id", res, i, 2);
		add_str(m, "sender", res, i, 3);
		add_time(m, "queued_at",
		         PQgetisnull(res, i, 4) ? 0 : strtoll(PQgetvalue(res, i, 4), NULL, 10));
		json_object_object_add(m, "recipients", json_object_new_array());
		json_object_array_add(list, m);
		msgs[i] = m;
		mbuf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
	}
	mbuf_putc(&ids, '}');
	json_object_object_add(doc, "messages", list);
	if (more) {
		json_object_object_add(doc, "next_cursor",
		                       json_object_new_string(PQgetvalue(res, n - 1, 0)));
	} else
		json_object_object_add(doc, "next_cursor", NULL);
	/* remember each message's position by id */
	int64_t *idv = mycalloc((size_t)n + 1, sizeof(*idv));
	for (int i = 0; i < n; i++)
		idv[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	if (n > 0) {
		const char *p1[1] = {mbuf_str(&ids)};
		res = PQexecParams(
		        conn,
		        "SELECT recipient, orig_recipient, dkey, rkey, displayed, details,"
		        " xkey, copies, message FROM recipients WHERE message = ANY($1::bigint[])"
		        " ORDER BY message, recipient",
		        1, NULL, p1, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			mbuf_free(&ids);
			free(msgs);
			free(idv);
			json_object_put(doc);
			return failed(conn, res, transient_r, error_r);
		}
		for (int r = 0; r < PQntuples(res); r++) {
			int64_t mid = strtoll(PQgetvalue(res, r, 8), NULL, 10);
			for (int i = 0; i < n; i++)
				if (idv[i] == mid) {
					struct json_object *q =
					        json_object_object_get(msgs[i], "queued_at");
					int64_t qms = 0;
					if (q != NULL)
						rfc3339_parse(json_object_get_string(q),
						              strlen(json_object_get_string(q)),
						              &qms, error_r);
					json_object_array_add(
					        json_object_object_get(msgs[i], "recipients"),
					        recipient_doc(res, r, qms));
					break;
				}
		}
		PQclear(res);
	}
	mbuf_free(&ids);
	free(msgs);
	free(idv);
	*doc_r = doc;
	return 0;
}

int
store_receipt_target(PGconn *conn, const char *id, const char *user, char **tracking_id_r,
                     bool *receipts_r, bool *transient_r, const char **error_r)
{
	struct mbuf bracketed = MBUF_INIT;
	const char *params[3];
	PGresult *res;
	int found;

	*transient_r = false;
	if (id[0] == '<')
		mbuf_puts(&bracketed, id);
	else
		mbuf_printf(&bracketed, "<%s>", id);
	params[0] = id;
	params[1] = mbuf_str(&bracketed);
	params[2] = user;
	res = PQexecParams(conn,
	                   "SELECT m.tracking_id, coalesce((SELECT u.read_receipts FROM users u"
	                   "  WHERE u.name = lower($3)), true)"
	                   " FROM messages m JOIN recipients r ON r.message = m.id"
	                   " WHERE (m.tracking_id = $1 OR m.message_id = $2)"
	                   " AND r.recipient = lower($3) AND m.tracking_id IS NOT NULL"
	                   " ORDER BY m.id DESC LIMIT 1",
	                   3, NULL, params, NULL, NULL, 0);
	mbuf_free(&bracketed);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, transient_r, error_r);
	found = PQntuples(res) == 1;
	if (found) {
		*tracking_id_r = get_str(res, 0, 0);
		*receipts_r = PQgetvalue(res, 0, 1)[0] == 't';
	}
	PQclear(res);
	return found;
}

int
store_prefs_get(PGconn *conn, const char *user, struct json_object **doc_r, bool *transient_r,
                const char **error_r)
{
	const char *params[1] = {user};
	struct json_object *doc;
	PGresult *res;

	*transient_r = false;
	res = PQexecParams(conn, "SELECT read_receipts, presence FROM users WHERE name = $1", 1,
	                   NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, transient_r, error_r);
	doc = json_object_new_object();
	json_object_object_add(doc, "user", json_object_new_string(user));
	json_object_object_add(
	        doc, "read_receipts",
	        json_object_new_boolean(PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't'));
	json_object_object_add(
	        doc, "presence",
	        json_object_new_boolean(PQntuples(res) == 1 && PQgetvalue(res, 0, 1)[0] == 't'));
	PQclear(res);
	*doc_r = doc;
	return 0;
}

int
store_prefs_set(PGconn *conn, const char *user, int read_receipts, int presence, bool *transient_r,
                const char **error_r)
{
	const char *params[3] = {user,
	                         read_receipts < 0 ? NULL
	                         : read_receipts   ? "t"
	                                           : "f",
	                         presence < 0 ? NULL
	                         : presence   ? "t"
	                                      : "f"};
	PGresult *res;

	*transient_r = false;
	res = PQexecParams(conn,
	                   "INSERT INTO users AS u (name, read_receipts, presence)"
	                   " VALUES ($1, coalesce($2::boolean, true), coalesce($3::boolean, false))"
	                   " ON CONFLICT (name) DO UPDATE SET"
	                   " read_receipts = coalesce($2::boolean, u.read_receipts),"
	                   " presence = coalesce($3::boolean, u.presence)",
	                   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return failed(conn, res, transient_r, error_r);
	PQclear(res);
	if (presence == 0) {
		/* opting out forgets what was known */
		res = PQexecParams(conn, "DELETE FROM presence WHERE name = $1", 1, NULL, params,
		                   NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return failed(conn, res, transient_r, error_r);
		PQclear(res);
	}
	return 0;
}

int
store_presence_get(PGconn *conn, const char *user, struct json_object **doc_r, bool *transient_r,
                   const char **error_r)
{
	const char *params[1] = {user};
	struct json_object *doc;
	PGresult *res;

	*transient_r = false;
	res = PQexecParams(conn,
	                   "SELECT p.online_until > now(),"
	                   " (extract(epoch FROM p.last_seen) * 1000)::bigint, p.client,"
	                   " CASE WHEN p.typing_until > now() THEN p.typing_to END"
	                   " FROM users u LEFT JOIN presence p ON p.name = u.name"
	                   " WHERE u.name = $1 AND u.presence",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, transient_r, error_r);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	doc = json_object_new_object();
	json_object_object_add(doc, "user", json_object_new_string(user));
	json_object_object_add(doc, "online",
	                       json_object_new_boolean(PQgetvalue(res, 0, 0)[0] == 't'));
	add_time(doc, "last_seen",
	         PQgetisnull(res, 0, 1) ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10));
	add_str(doc, "client", res, 0, 2);
	add_str(doc, "typing_to", res, 0, 3);
	PQclear(res);
	*doc_r = doc;
	return 1;
}

int
store_presence_touch(PGconn *conn, const char *user, const char *client, int64_t online_ms,
                     const char *typing_to, int64_t typing_ms, bool *transient_r,
                     const char **error_r)
{
	char on[32], ty[32];
	const char *params[5] = {user, client, on, typing_to, ty};
	PGresult *res;

	*transient_r = false;
	snprintf(on, sizeof(on), "%lld", (long long)online_ms);
	snprintf(ty, sizeof(ty), "%lld", (long long)typing_ms);
	res = PQexecParams(
	        conn,
	        "INSERT INTO presence AS p (name, online_until, last_seen, client,"
	        " typing_to, typing_until)"
	        " SELECT u.name, now() + $3::bigint * interval '1 millisecond', now(), $2,"
	        " lower($4), CASE WHEN $4 IS NULL THEN NULL"
	        "  ELSE now() + $5::bigint * interval '1 millisecond' END"
	        " FROM users u WHERE u.name = $1 AND u.presence"
	        " ON CONFLICT (name) DO UPDATE SET"
	        " online_until = greatest(p.online_until, EXCLUDED.online_until),"
	        " last_seen = EXCLUDED.last_seen, client = EXCLUDED.client,"
	        " typing_to = EXCLUDED.typing_to, typing_until = EXCLUDED.typing_until",
	        5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return failed(conn, res, transient_r, error_r);
	PQclear(res);
	return 0;
}
