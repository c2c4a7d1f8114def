/*
 * store_schema - the schema and its upkeep: the migrations of sql/, the version in the
 * database, a connection's session set-up and the partition maintenance. See store.h.
 *
 * DESIGN
 *	Migrations run one per transaction, in order, under an advisory lock, so that two
 *	programs starting at once (statusd, statusctl migrate) apply each one once.
 *
 * SECURITY
 *	Migration files come from sql_dir, which is trusted like the configuration; their
 *	names must be NNN_name.sql with a lower-case name, numbered without gaps.
 *
 * DIAGNOSTICS
 *	0 (or the version) or -1 with a one-line *error_r, as store.h says.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "store_int.h"

#define MIGRATION_LOCK     "7201650101" /* pg_advisory_lock key: "msgstatus migrate" */
#define MIGRATION_FILE_MAX (1024 * 1024)
#define MIGRATIONS_MAX     999

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
	if (store_exec(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", transient_r, error_r) <
	    0)
		goto out;
	if (store_exec(conn,
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
		     store_exec(conn, "BEGIN", transient_r, error_r) == 0;
		if (ok && store_exec(conn, mbuf_str(&sql), transient_r, error_r) < 0) {
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
		if (ok && store_exec(conn, "COMMIT", transient_r, error_r) < 0)
			ok = 0;
		mbuf_free(&sql);
		mbuf_free(&path);
		if (!ok) {
			store_rollback(conn);
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
	return store_exec(conn,
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
	/* the events' partitions and unjoined lines (sql/001); other sites' ids (sql/007),
	   once the database has them (statusd also runs on a database not migrated yet) */
	res = PQexecParams(conn,
	                   "SELECT msgstatus_maintain($1::bigint * interval '1 millisecond'),"
	                   " to_regproc('msgstatus_maintain_inbound') IS NOT NULL,"
	                   " to_regproc('msgstatus_maintain_reports') IS NOT NULL",
	                   1, NULL, params, NULL, NULL, 0);
	bool reports = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	               strcmp(PQgetvalue(res, 0, 2), "t") == 0;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		PQclear(res);
		res = PQexecParams(conn,
		                   "SELECT msgstatus_maintain_inbound($1::bigint * interval '1 "
		                   "millisecond')",
		                   1, NULL, params, NULL, NULL, 0);
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && reports) {
		/* DSNs and MDNs from other mail systems (sql/009) */
		PQclear(res);
		res = PQexecParams(conn,
		                   "SELECT msgstatus_maintain_reports($1::bigint * interval '1 "
		                   "millisecond')",
		                   1, NULL, params, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

void
store_session_quiet(PGconn *conn)
{
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
}
