/*
 * fedkeys - a site's federation signing keys in files (see fedkeys.h).
 */
#include "fedkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg.h"
#include "mymalloc.h"

#define INDEX       "index"
#define LOCK        ".lock"
#define INDEX_MAX   (1024 * 1024) /* bytes */
#define PEM_MAX     4096
#define KEY_B64     44
#define FILE_MAX    (FEDREC_NAME_MAX + 4) /* name + ".pem" */
#define INDEX_FIELD 6

struct store {
	const char *dir;
	int dirfd, lockfd;
	struct fedkeys_key *keys;
	size_t n;
};

static const char *const state_names[] = {"signing", "published", "retired"};

const char *
fedkeys_state_name(enum fedkeys_state state)
{
	return state_names[state];
}

/* The domain and selector as fedrec writes them, and the key file's name into buf. */
static int
file_name(const char *domain, const char *selector, char *buf, const char **error_r)
{
	char owner[FEDREC_NAME_MAX];
	const char *error;

	if (fedrec_msk_name(selector, domain, owner, &error) < 0) {
		*error_r = errfmt("%s: %s (lowercase letters, digits and hyphens%s)", error,
		                  strcmp(error, "not a valid selector") == 0 ? selector : domain,
		                  strcmp(error, "not a valid selector") == 0
		                          ? ", one label of at most 63 bytes"
		                          : ", labels separated by dots, no final dot");
		return -1;
	}
	snprintf(buf, FILE_MAX, "%s.pem", owner);
	return 0;
}

int
fedkeys_path(const char *dir, const char *domain, const char *selector, char *buf, size_t size,
             const char **error_r)
{
	char name[FILE_MAX];

	if (file_name(domain, selector, name, error_r) < 0)
		return -1;
	if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size) {
		*error_r = errfmt("%s: path too long", dir);
		return -1;
	}
	return 0;
}

/* --- the directory and its index ------------------------------------------------------- */

/* Open dir (made with mode 0700 if create and missing); 1 when missing and !create. */
static int
dir_open(struct store *st, const char *dir, bool create, const char **error_r)
{
	struct stat sb;

	memset(st, 0, sizeof(*st));
	st->dir = dir;
	st->dirfd = st->lockfd = -1;
	if (dir[0] != '/') {
		*error_r = errfmt("federation_key_dir %s: expected an absolute path", dir);
		return -1;
	}
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r =
		        errfmt("federation_key_dir %s: cannot make it: %s", dir, strerror(errno));
		return -1;
	}
	if ((st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT && !create)
			return 1;
		*error_r = errfmt("federation_key_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (fstat(st->dirfd, &sb) < 0) {
		*error_r = errfmt("federation_key_dir %s: %s", dir, strerror(errno));
		close(st->dirfd);
		st->dirfd = -1;
		return -1;
	}
	if ((sb.st_mode & 022) != 0) {
		*error_r = errfmt("federation_key_dir %s may be written by group or others "
		                  "(mode %04o): chmod go-w it",
		                  dir, (unsigned)(sb.st_mode & 07777));
		close(st->dirfd);
		st->dirfd = -1;
		return -1;
	}
	return 0;
}

static void
store_close(struct store *st)
{
	if (st->lockfd >= 0)
		close(st->lockfd); /* releases the lock */
	if (st->dirfd >= 0)
		close(st->dirfd);
	free(st->keys);
	st->keys = NULL;
	st->lockfd = st->dirfd = -1;
}

static int
store_lock(struct store *st, const char **error_r)
{
	st->lockfd = openat(st->dirfd, LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (st->lockfd < 0 || flock(st->lockfd, LOCK_EX) < 0) {
		*error_r = errfmt("%s/" LOCK ": %s", st->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Whole file at name (at most max bytes) into a NUL-terminated buffer; 1 if missing. */
static int
read_file(struct store *st, const char *name, size_t max, char **buf_r, size_t *len_r,
          struct stat *sb, const char **error_r)
{
	size_t len = 0;
	ssize_t got;
	char *buf;
	int fd;

	if ((fd = openat(st->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT)
			return 1;
		*error_r = errfmt("%s/%s: %s", st->dir, name, strerror(errno));
		return -1;
	}
	if (fstat(fd, sb) < 0 || !S_ISREG(sb->st_mode) || (size_t)sb->st_size > max) {
		*error_r = errfmt("%s/%s: not a regular file of at most %zu bytes", st->dir, name,
		                  max);
		close(fd);
		return -1;
	}
	buf = mymalloc(max + 2);
	while (len <= max) {
		got = read(fd, buf + len, max + 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			*error_r = errfmt("%s/%s: %s", st->dir, name, strerror(errno));
			OPENSSL_cleanse(buf, len);
			free(buf);
			close(fd);
			return -1;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	if (len > max) {
		*error_r = errfmt("%s/%s: longer than %zu bytes", st->dir, name, max);
		OPENSSL_cleanse(buf, len);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

static bool
parse_ms(const char *s, int64_t *ms_r)
{
	int64_t v = 0;

	if (*s == '\0' || strlen(s) > 15 || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
	}
	*ms_r = v;
	return true;
}

static bool
parse_pub(const char *s, unsigned char *pub)
{
	unsigned char raw[KEY_B64 / 4 * 3];
	char again[KEY_B64 + 1];

	if (strlen(s) != KEY_B64 ||
	    EVP_DecodeBlock(raw, (const unsigned char *)s, KEY_B64) != (int)sizeof(raw) ||
	    EVP_EncodeBlock((unsigned char *)again, raw, FEDREC_KEY_LEN) != KEY_B64 ||
	    memcmp(again, s, KEY_B64) != 0)
		return false;
	memcpy(pub, raw, FEDREC_KEY_LEN);
	return true;
}

/* One index line (NUL-terminated, no newline) into *key; NULL or the reason. */
static const char *
parse_line(char *line, struct fedkeys_key *key)
{
	char *field[INDEX_FIELD], *p = line, name[FILE_MAX];
	const char *error;
	size_t n = 0;
	int s;

	while (n < INDEX_FIELD) {
		field[n++] = p;
		if ((p = strchr(p, ' ')) == NULL)
			break;
		*p++ = '\0';
	}
	if (n != INDEX_FIELD || p != NULL)
		return "expected six fields separated by single spaces";
	if (file_name(field[0], field[1], name, &error) < 0)
		return error;
	strcpy(key->domain, field[0]);
	strcpy(key->selector, field[1]);
	for (s = 0; s < 3 && strcmp(field[2], state_names[s]) != 0; s++)
		;
	if (s == 3)
		return "state is not signing, published or retired";
	key->state = (enum fedkeys_state)s;
	if (!parse_ms(field[3], &key->created_ms) || !parse_ms(field[4], &key->changed_ms))
		return "times are not milliseconds since the epoch";
	if (!parse_pub(field[5], key->pub))
		return "public key is not the base64 of 32 bytes";
	return NULL;
}

static int
key_cmp(const void *a, const void *b)
{
	const struct fedkeys_key *x = a, *y = b;
	int c = strcmp(x->domain, y->domain);

	if (c != 0)
		return c;
	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->selector, y->selector);
}

static int
index_read(struct store *st, const char **error_r)
{
	struct stat sb;
	char *buf, *line, *next;
	size_t len, lineno = 0;
	int rc;

	st->n = 0;
	if ((rc = read_file(st, INDEX, INDEX_MAX, &buf, &len, &sb, error_r)) != 0)
		return rc < 0 ? -1 : 0;
	for (line = buf; *line != '\0'; line = next) {
		struct fedkeys_key key;
		const char *why;

		lineno++;
		if ((next = strchr(line, '\n')) == NULL) {
			*error_r = errfmt("%s/" INDEX ", line %zu: no newline at its end", st->dir,
			                  lineno);
			goto fail;
		}
		*next++ = '\0';
		if (line[0] == '#')
			continue;
		if ((why = parse_line(line, &key)) != NULL) {
			*error_r = errfmt("%s/" INDEX ", line %zu: %s", st->dir, lineno, why);
			goto fail;
		}
		for (size_t i = 0; i < st->n; i++) {
			bool same = strcmp(st->keys[i].domain, key.domain) == 0;
			if (same && strcmp(st->keys[i].selector, key.selector) == 0) {
				*error_r = errfmt("%s/" INDEX ", line %zu: a key listed twice",
				                  st->dir, lineno);
				goto fail;
			}
			if (same && key.state == FEDKEYS_SIGNING &&
			    st->keys[i].state == FEDKEYS_SIGNING) {
				*error_r = errfmt("%s/" INDEX ", line %zu: a second signing key "
				                  "for %s",
				                  st->dir, lineno, key.domain);
				goto fail;
			}
		}
		st->keys = myreallocarray(st->keys, st->n + 1, sizeof(*st->keys));
		st->keys[st->n++] = key;
	}
	free(buf);
	qsort(st->keys, st->n, sizeof(*st->keys), key_cmp);
	return 0;
fail:
	free(buf);
	return -1;
}

/* Write len bytes into a new temporary file (mode 0600), fsync()ed; its name to tmp. */
static int
write_tmp(struct store *st, const void *data, size_t len, char *tmp, size_t size,
          const char **error_r)
{
	const char *p = data;
	int fd = -1;

	for (unsigned i = 0; fd < 0 && i < 100; i++) {
		snprintf(tmp, size, ".tmp-%ld-%u", (long)getpid(), i);
		fd = openat(st->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		            0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		*error_r = errfmt("%s: cannot make a temporary file: %s", st->dir, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlinkat(st->dirfd, tmp, 0);
		}
		return -1;
	}
	while (len > 0) {
		ssize_t put = write(fd, p, len);
		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			goto fail;
		p += put;
		len -= (size_t)put;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	*error_r = errfmt("%s/%s: %s", st->dir, tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlinkat(st->dirfd, tmp, 0);
	return -1;
}

static int
dir_sync(struct store *st, const char **error_r)
{
	if (fsync(st->dirfd) < 0) {
		*error_r = errfmt("%s: fsync: %s", st->dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int
index_write(struct store *st, const char **error_r)
{
	struct mbuf out = MBUF_INIT;
	char tmp[64];
	int rc = -1;

	qsort(st->keys, st->n, sizeof(*st->keys), key_cmp);
	mbuf_puts(&out, "# msgstatus federation keys (statusctl key): domain selector state "
	                "created_ms changed_ms public_key\n");
	for (size_t i = 0; i < st->n; i++) {
		const struct fedkeys_key *k = &st->keys[i];
		char b64[KEY_B64 + 1];

		EVP_EncodeBlock((unsigned char *)b64, k->pub, FEDREC_KEY_LEN);
		mbuf_printf(&out, "%s %s %s %lld %lld %s\n", k->domain, k->selector,
		            state_names[k->state], (long long)k->created_ms,
		            (long long)k->changed_ms, b64);
	}
	if (write_tmp(st, mbuf_str(&out), out.len, tmp, sizeof(tmp), error_r) < 0)
		goto out;
	if (renameat(st->dirfd, tmp, st->dirfd, INDEX) < 0) {
		*error_r = errfmt("%s/" INDEX ": %s", st->dir, strerror(errno));
		unlinkat(st->dirfd, tmp, 0);
		goto out;
	}
	rc = dir_sync(st, error_r);
out:
	mbuf_free(&out);
	return rc;
}

static struct fedkeys_key *
find(struct store *st, const char *domain, const char *selector, enum fedkeys_state *state)
{
	for (size_t i = 0; i < st->n; i++) {
		if (strcmp(st->keys[i].domain, domain) == 0 &&
		    (selector != NULL ? strcmp(st->keys[i].selector, selector) == 0
		                      : st->keys[i].state == *state))
			return &st->keys[i];
	}
	return NULL;
}

/* Open dir for a change: made if missing, locked, index read. */
static int
store_begin(struct store *st, const char *dir, const char *domain, const char *selector,
            const char **error_r)
{
	char name[FILE_MAX];

	memset(st, 0, sizeof(*st));
	st->dirfd = st->lockfd = -1;
	if (file_name(domain, selector, name, error_r) < 0 || dir_open(st, dir, true, error_r) < 0)
		return -1;
	if (store_lock(st, error_r) < 0 || index_read(st, error_r) < 0) {
		store_close(st);
		return -1;
	}
	return 0;
}

/* --- keys ------------------------------------------------------------------------------- */

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0; /* an encrypted key is an error, never a prompt */
}

static const char *
ssl_error(void)
{
	unsigned long e = ERR_get_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return reason ? reason : "unknown error";
}

/* Generate a key and give it its file (never replacing one); appended to st->keys. */
static int
make_locked(struct store *st, const char *domain, const char *selector, int64_t now_ms,
            const char **error_r)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	struct fedkeys_key key;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	enum fedkeys_state signing = FEDKEYS_SIGNING;
	char name[FILE_MAX], tmp[64], *pem;
	size_t publen = FEDREC_KEY_LEN;
	long pemlen;
	int rc = -1;

	file_name(domain, selector, name, error_r);
	if (find(st, domain, selector, NULL) != NULL) {
		*error_r = errfmt("%s already has a key with selector %s (selectors are "
		                  "never reused, retired ones included): choose another",
		                  domain, selector);
		goto out;
	}
	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &pkey) <= 0 ||
	    EVP_PKEY_get_raw_public_key(pkey, key.pub, &publen) <= 0 ||
	    (bio = BIO_new(BIO_s_secmem())) == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
		*error_r = errfmt("cannot make an Ed25519 key: %s", ssl_error());
		goto out;
	}
	if (write_tmp(st, pem, (size_t)pemlen, tmp, sizeof(tmp), error_r) < 0)
		goto out;
	if (linkat(st->dirfd, tmp, st->dirfd, name, 0) < 0) {
		int err = errno;
		unlinkat(st->dirfd, tmp, 0);
		if (err == EEXIST)
			*error_r = errfmt("%s/%s exists already: not overwriting it (a key the "
			                  "index does not name; move it away if it is not needed)",
			                  st->dir, name);
		else
			*error_r = errfmt("%s/%s: %s", st->dir, name, strerror(err));
		goto out;
	}
	unlinkat(st->dirfd, tmp, 0);
	strcpy(key.domain, domain);
	strcpy(key.selector, selector);
	key.state = find(st, domain, NULL, &signing) ? FEDKEYS_PUBLISHED : FEDKEYS_SIGNING;
	key.created_ms = key.changed_ms = now_ms;
	st->keys = myreallocarray(st->keys, st->n + 1, sizeof(*st->keys));
	st->keys[st->n++] = key;
	rc = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int
fedkeys_make(const char *dir, const char *domain, const char *selector, int64_t now_ms,
             struct fedkeys_key *key_r, const char **error_r)
{
	struct store st;
	char name[FILE_MAX];
	int rc = -1;

	if (store_begin(&st, dir, domain, selector, error_r) < 0)
		return -1;
	if (make_locked(&st, domain, selector, now_ms, error_r) < 0)
		goto out;
	*key_r = st.keys[st.n - 1];
	if (index_write(&st, error_r) < 0) {
		file_name(domain, selector, name, error_r);
		unlinkat(st.dirfd, name, 0); /* not in the index: never made */
		goto out;
	}
	rc = 0;
out:
	store_close(&st);
	return rc;
}

int
fedkeys_rotate(const char *dir, const char *domain, const char *selector, int64_t now_ms,
               bool *made_r, char *prev_r, const char **error_r)
{
	enum fedkeys_state signing = FEDKEYS_SIGNING;
	struct fedkeys_key *next, *prev;
	struct store st;
	char name[FILE_MAX];
	int rc = -1;

	*made_r = false;
	prev_r[0] = '\0';
	if (store_begin(&st, dir, domain, selector, error_r) < 0)
		return -1;
	if ((next = find(&st, domain, selector, NULL)) == NULL) {
		if (make_locked(&st, domain, selector, now_ms, error_r) < 0)
			goto out;
		*made_r = true;
		next = &st.keys[st.n - 1];
	} else if (next->state == FEDKEYS_SIGNING) {
		*error_r = errfmt("%s is already the signing key of %s", selector, domain);
		goto out;
	} else if (next->state == FEDKEYS_RETIRED) {
		*error_r = errfmt("%s of %s is retired: a retired key is never used again",
		                  selector, domain);
		goto out;
	}
	if ((prev = find(&st, domain, NULL, &signing)) != NULL && prev != next) {
		prev->state = FEDKEYS_PUBLISHED;
		prev->changed_ms = now_ms;
		strcpy(prev_r, prev->selector);
	}
	next->state = FEDKEYS_SIGNING;
	next->changed_ms = now_ms;
	if (index_write(&st, error_r) < 0) {
		if (*made_r) {
			file_name(domain, selector, name, error_r);
			unlinkat(st.dirfd, name, 0);
		}
		goto out;
	}
	rc = 0;
out:
	store_close(&st);
	return rc;
}

int
fedkeys_retire(const char *dir, const char *domain, const char *selector, int64_t now_ms,
               bool *already_r, const char **error_r)
{
	struct fedkeys_key *key;
	struct store st;
	char name[FILE_MAX];
	int rc = -1;

	*already_r = false;
	if (store_begin(&st, dir, domain, selector, error_r) < 0)
		return -1;
	file_name(domain, selector, name, error_r);
	if ((key = find(&st, domain, selector, NULL)) == NULL) {
		*error_r = errfmt("%s has no key with selector %s", domain, selector);
		rc = FEDKEYS_NOKEY;
		goto out;
	}
	if (key->state == FEDKEYS_SIGNING) {
		*error_r = errfmt("%s is the signing key of %s: rotate to another key first "
		                  "(statusctl key rotate %s NEW-SELECTOR)",
		                  selector, domain, domain);
		goto out;
	}
	if (key->state == FEDKEYS_RETIRED) {
		*already_r = true;
	} else {
		key->state = FEDKEYS_RETIRED;
		key->changed_ms = now_ms;
		if (index_write(&st, error_r) < 0)
			goto out;
	}
	if (unlinkat(st.dirfd, name, 0) < 0 && errno != ENOENT) {
		*error_r = errfmt("%s/%s: retired, but the file could not be deleted: %s", dir,
		                  name, strerror(errno));
		goto out;
	}
	rc = dir_sync(&st, error_r);
out:
	store_close(&st);
	return rc;
}

int
fedkeys_list(const char *dir, const char *domain, struct fedkeys_key **keys_r, size_t *n_r,
             const char **error_r)
{
	struct store st;
	size_t n = 0;
	int rc;

	*keys_r = NULL;
	*n_r = 0;
	if ((rc = dir_open(&st, dir, false, error_r)) != 0)
		return rc < 0 ? -1 : 0;
	if (index_read(&st, error_r) < 0) {
		store_close(&st);
		return -1;
	}
	for (size_t i = 0; i < st.n; i++)
		if (domain == NULL || strcmp(st.keys[i].domain, domain) == 0)
			st.keys[n++] = st.keys[i];
	*keys_r = st.keys;
	*n_r = n;
	st.keys = NULL;
	store_close(&st);
	return 0;
}

void
fedkeys_list_free(struct fedkeys_key **keys)
{
	free(*keys);
	*keys = NULL;
}

int
fedkeys_load(const char *dir, const char *domain, const char *selector, EVP_PKEY **key_r,
             const char **error_r)
{
	unsigned char pub[FEDREC_KEY_LEN];
	const struct fedkeys_key *key;
	size_t len, publen = sizeof(pub);
	struct stat sb;
	struct store st;
	EVP_PKEY *pkey = NULL;
	char name[FILE_MAX], *pem = NULL;
	BIO *bio;
	int rc;

	*key_r = NULL;
	if (file_name(domain, selector, name, error_r) < 0)
		return -1;
	if ((rc = dir_open(&st, dir, false, error_r)) != 0) {
		if (rc > 0) {
			*error_r = errfmt("%s has no key with selector %s", domain, selector);
			return FEDKEYS_NOKEY;
		}
		return -1;
	}
	rc = -1;
	if (index_read(&st, error_r) < 0)
		goto out;
	if ((key = find(&st, domain, selector, NULL)) == NULL || key->state == FEDKEYS_RETIRED) {
		*error_r = errfmt("%s has no %skey with selector %s", domain, key ? "valid " : "",
		                  selector);
		rc = key ? -1 : FEDKEYS_NOKEY;
		goto out;
	}
	if ((rc = read_file(&st, name, PEM_MAX, &pem, &len, &sb, error_r)) != 0) {
		if (rc > 0)
			*error_r = errfmt("%s/%s: missing", dir, name);
		rc = -1;
		goto out;
	}
	rc = -1;
	if ((sb.st_mode & 007) != 0) {
		*error_r = errfmt("%s/%s is accessible to others (mode %04o): chmod o-rwx it", dir,
		                  name, (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
	}
	if (pkey == NULL || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(pkey, pub, &publen) <= 0) {
		*error_r =
		        errfmt("%s/%s: not an unencrypted Ed25519 private key in PEM", dir, name);
		ERR_clear_error();
		goto out;
	}
	if (memcmp(pub, key->pub, sizeof(pub)) != 0) {
		*error_r = errfmt("%s/%s: does not match the public key in the index", dir, name);
		goto out;
	}
	*key_r = pkey;
	pkey = NULL;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	if (pem != NULL) {
		OPENSSL_cleanse(pem, len);
		free(pem);
	}
	store_close(&st);
	return rc;
}

void
fedkeys_zone_txt(const char *owner, long ttl, const char *txt, struct mbuf *out)
{
	size_t len = strlen(txt);

	mbuf_printf(out, "%s.\t%ld\tIN\tTXT\t", owner, ttl);
	/* character-strings of at most 255 bytes each (RFC 1035 section 3.3) */
	for (size_t i = 0; i == 0 || i < len; i += 255) {
		size_t end = len - i < 255 ? len : i + 255;

		mbuf_puts(out, i ? " \"" : "\"");
		for (size_t k = i; k < end; k++) {
			if (txt[k] == '"' || txt[k] == '\\')
				mbuf_putc(out, '\\');
			mbuf_putc(out, txt[k]);
		}
		mbuf_putc(out, '"');
	}
	mbuf_putc(out, '\n');
}
