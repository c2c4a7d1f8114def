/*
 * test_fedkeys - unit tests for federation/fedkeys (a site's signing keys in files,
 * docs/federation.md "Operations"), each in a fresh temporary directory.
 *
 * Make (first key signing, later ones published, file modes whatever the umask, no
 * overwriting, selectors never reused), rotate (two valid keys at once), retire (the
 * signing key refused, the private key deleted, idempotent), list, load (the key signs
 * and matches its index entry; a tampered index, a readable file or a retired key are
 * refused), untrusted domains and selectors (no file is made outside the directory), a
 * damaged index, and the records: each parses back through fedrec to the key's public key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fedkeys.h"
#include "fedrec.h"
#include "mbuf.h"

#include "check.h"

#define NOW 1765017000000LL

struct tmp {
	char root[64];  /* mkdtemp */
	char dir[128];  /* root/keys: made by fedkeys */
	char path[512]; /* scratch */
};

static int
setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	strcpy(t->root, "/tmp/test_fedkeys.XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->dir, sizeof(t->dir), "%s/keys", t->root);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tmp *t = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	assert_int_equal(system(cmd), 0);
	free(t);
	return 0;
}

static const char *
file_in(struct tmp *t, const char *dir, const char *name)
{
	snprintf(t->path, sizeof(t->path), "%s/%s", dir, name);
	return t->path;
}

static int
mode_of(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) < 0 ? -1 : (int)(sb.st_mode & 07777);
}

/* Names in dir (excluding . and ..), counted; with prefix only those starting with it. */
static int
count_files(const char *dir, const char *prefix)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static const struct fedkeys_key *
lookup(const struct fedkeys_key *keys, size_t n, const char *domain, const char *selector)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].domain, domain) == 0 && strcmp(keys[i].selector, selector) == 0)
			return &keys[i];
	return NULL;
}

static int
state_of(const char *dir, const char *domain, const char *selector)
{
	struct fedkeys_key *keys;
	const struct fedkeys_key *k;
	const char *error = NULL;
	size_t n;
	int s;

	assert_int_equal(fedkeys_list(dir, domain, &keys, &n, &error), 0);
	k = lookup(keys, n, domain, selector);
	s = k ? (int)k->state : -1;
	fedkeys_list_free(&keys);
	return s;
}

static void
test_make(void **state)
{
	struct tmp *t = *state;
	struct fedkeys_key k1, k2;
	const char *error = NULL;
	mode_t old = umask(0); /* the modes must not depend on the umask */

	CHECK_INT("make first", fedkeys_make(t->dir, "example.net", "s1", NOW, &k1, &error), 0);
	CHECK_INT("first key signs", k1.state, FEDKEYS_SIGNING);
	CHECK_INT("dir mode", mode_of(t->dir), 0700);
	CHECK_INT("key file mode", mode_of(file_in(t, t->dir, "s1._msgstatus-key.example.net.pem")),
	          0600);
	CHECK_INT("index mode", mode_of(file_in(t, t->dir, "index")), 0600);
	CHECK_INT("make second", fedkeys_make(t->dir, "example.net", "s2", NOW + 1, &k2, &error),
	          0);
	CHECK_INT("second key published", k2.state, FEDKEYS_PUBLISHED);
	CHECK_INT("different keys", memcmp(k1.pub, k2.pub, FEDREC_KEY_LEN) != 0, 1);
	CHECK_INT("no temporary files left", count_files(t->dir, ".tmp-"), 0);
	/* another domain: its own signing key */
	CHECK_INT("other domain", fedkeys_make(t->dir, "example.org", "s1", NOW, &k2, &error), 0);
	CHECK_INT("other domain signs", k2.state, FEDKEYS_SIGNING);
	umask(old);

	/* a selector is never reused */
	CHECK_INT("same selector", fedkeys_make(t->dir, "example.net", "s1", NOW, &k2, &error), -1);
	CHECK_HAS("same selector", error, "already has a key with selector s1");
	CHECK_INT("still signing", state_of(t->dir, "example.net", "s1"), FEDKEYS_SIGNING);
	check_done();
}

static void
test_no_overwrite(void **state)
{
	struct tmp *t = *state;
	struct fedkeys_key k;
	const char *error = NULL;
	char buf[64] = "";
	int fd;

	assert_int_equal(fedkeys_make(t->dir, "example.net", "s1", NOW, &k, &error), 0);
	/* a file the index does not name, in the way of a new key */
	fd = open(file_in(t, t->dir, "s2._msgstatus-key.example.net.pem"),
	          O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);
	CHECK_INT("refused", fedkeys_make(t->dir, "example.net", "s2", NOW, &k, &error), -1);
	CHECK_HAS("refused", error, "exists already: not overwriting it");
	fd = open(t->path, O_RDONLY);
	assert_true(fd >= 0);
	CHECK_INT("read back", read(fd, buf, sizeof(buf) - 1), 9);
	close(fd);
	CHECK_STR("file untouched", buf, "precious\n");
	CHECK_INT("not in the index", state_of(t->dir, "example.net", "s2"), -1);
	CHECK_INT("no temporary files left", count_files(t->dir, ".tmp-"), 0);
	check_done();
}

static void
test_untrusted_names(void **state)
{
	static const struct {
		const char *domain, *selector, *error;
	} bad[] = {
	        {"example.net", "../x", "not a valid selector"},
	        {"example.net", "a/b", "not a valid selector"},
	        {"example.net", "", "not a valid selector"},
	        {"example.net", ".hidden", "not a valid selector"},
	        {"example.net", "two.labels", "not a valid selector"},
	        {"example.net", "-s1", "not a valid selector"},
	        {"example.net", "S1", "not a valid selector"},
	        {"example.net", "a234567890123456789012345678901234567890123456789012345678901234",
	         "not a valid selector"},
	        {"../../etc", "s1", "not a valid domain"},
	        {"example.net/..", "s1", "not a valid domain"},
	        {"example.net.", "s1", "not a valid domain"},
	        {".example.net", "s1", "not a valid domain"},
	        {"Example.net", "s1", "not a valid domain"},
	        {"", "s1", "not a valid domain"},
	};
	struct tmp *t = *state;
	struct fedkeys_key k;
	EVP_PKEY *pkey = NULL;
	bool already;
	char prev[FEDREC_SELECTOR_MAX + 1];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *error = NULL;
		bool made;

		CHECK_INT(bad[i].selector,
		          fedkeys_make(t->dir, bad[i].domain, bad[i].selector, NOW, &k, &error),
		          -1);
		CHECK_HAS(bad[i].selector, error, bad[i].error);
		error = NULL;
		CHECK_INT(bad[i].selector,
		          fedkeys_rotate(t->dir, bad[i].domain, bad[i].selector, NOW, &made, prev,
		                         &error),
		          -1);
		CHECK_HAS(bad[i].selector, error, bad[i].error);
		error = NULL;
		CHECK_INT(bad[i].selector,
		          fedkeys_retire(t->dir, bad[i].domain, bad[i].selector, NOW, &already,
		                         &error),
		          -1);
		CHECK_HAS(bad[i].selector, error, bad[i].error);
		error = NULL;
		CHECK_INT(bad[i].selector,
		          fedkeys_load(t->dir, bad[i].domain, bad[i].selector, &pkey, &error), -1);
		CHECK_HAS(bad[i].selector, error, bad[i].error);
	}
	/* nothing was made: not even the directory, nor anything beside it */
	CHECK_INT("no directory", mode_of(t->dir), -1);
	CHECK_INT("nothing in the parent", count_files(t->root, ""), 0);
	check_done();
}

static void
test_rotate_retire(void **state)
{
	struct tmp *t = *state;
	char prev[FEDREC_SELECTOR_MAX + 1];
	struct fedkeys_key k;
	const char *error = NULL;
	bool made, already;

	assert_int_equal(fedkeys_make(t->dir, "example.net", "s1", NOW, &k, &error), 0);
	assert_int_equal(fedkeys_make(t->dir, "example.net", "s2", NOW, &k, &error), 0);

	/* rotate to the key made ahead: two valid at once */
	CHECK_INT("rotate",
	          fedkeys_rotate(t->dir, "example.net", "s2", NOW + 5, &made, prev, &error), 0);
	CHECK_INT("not made", made, false);
	CHECK_STR("previous", prev, "s1");
	CHECK_INT("s2 signs", state_of(t->dir, "example.net", "s2"), FEDKEYS_SIGNING);
	CHECK_INT("s1 still valid", state_of(t->dir, "example.net", "s1"), FEDKEYS_PUBLISHED);
	CHECK_INT("already signing",
	          fedkeys_rotate(t->dir, "example.net", "s2", NOW, &made, prev, &error), -1);
	CHECK_HAS("already signing", error, "already the signing key");

	/* rotate to a new selector: made on the spot */
	CHECK_INT("rotate new",
	          fedkeys_rotate(t->dir, "example.net", "s3", NOW + 6, &made, prev, &error), 0);
	CHECK_INT("made", made, true);
	CHECK_STR("previous", prev, "s2");
	CHECK_INT("s3 signs", state_of(t->dir, "example.net", "s3"), FEDKEYS_SIGNING);
	CHECK_INT("s2 valid", state_of(t->dir, "example.net", "s2"), FEDKEYS_PUBLISHED);
	CHECK_INT("s1 valid", state_of(t->dir, "example.net", "s1"), FEDKEYS_PUBLISHED);

	/* retire */
	CHECK_INT("retire signing",
	          fedkeys_retire(t->dir, "example.net", "s3", NOW, &already, &error), -1);
	CHECK_HAS("retire signing", error, "is the signing key of example.net");
	CHECK_INT("retire s1",
	          fedkeys_retire(t->dir, "example.net", "s1", NOW + 7, &already, &error), 0);
	CHECK_INT("not already", already, false);
	CHECK_INT("s1 retired", state_of(t->dir, "example.net", "s1"), FEDKEYS_RETIRED);
	CHECK_INT("s1 file deleted",
	          mode_of(file_in(t, t->dir, "s1._msgstatus-key.example.net.pem")), -1);
	CHECK_INT("retire again",
	          fedkeys_retire(t->dir, "example.net", "s1", NOW, &already, &error), 0);
	CHECK_INT("already", already, true);
	CHECK_INT("unknown", fedkeys_retire(t->dir, "example.net", "s9", NOW, &already, &error),
	          FEDKEYS_NOKEY);
	CHECK_HAS("unknown", error, "has no key with selector s9");
	CHECK_INT("rotate to retired",
	          fedkeys_rotate(t->dir, "example.net", "s1", NOW, &made, prev, &error), -1);
	CHECK_HAS("rotate to retired", error, "is retired");
	CHECK_INT("make retired", fedkeys_make(t->dir, "example.net", "s1", NOW, &k, &error), -1);
	check_done();
}

static void
test_list(void **state)
{
	struct tmp *t = *state;
	struct fedkeys_key k, *keys;
	const char *error = NULL;
	size_t n;

	CHECK_INT("missing dir", fedkeys_list(t->dir, NULL, &keys, &n, &error), 0);
	CHECK_INT("no keys", n, 0);
	fedkeys_list_free(&keys);
	assert_int_equal(fedkeys_make(t->dir, "example.org", "b", NOW + 2, &k, &error), 0);
	assert_int_equal(fedkeys_make(t->dir, "example.net", "z", NOW + 1, &k, &error), 0);
	assert_int_equal(fedkeys_make(t->dir, "example.net", "a", NOW + 3, &k, &error), 0);
	assert_int_equal(fedkeys_list(t->dir, NULL, &keys, &n, &error), 0);
	CHECK_INT("all", n, 3);
	if (n == 3) {
		/* by domain, then by age */
		CHECK_STR("0", keys[0].selector, "z");
		CHECK_STR("1", keys[1].selector, "a");
		CHECK_STR("2", keys[2].domain, "example.org");
		CHECK_INT("created", keys[1].created_ms, NOW + 3);
		CHECK_INT("states", keys[0].state * 10 + keys[1].state,
		          FEDKEYS_SIGNING * 10 + FEDKEYS_PUBLISHED);
	}
	fedkeys_list_free(&keys);
	assert_int_equal(fedkeys_list(t->dir, "example.org", &keys, &n, &error), 0);
	CHECK_INT("one domain", n, 1);
	fedkeys_list_free(&keys);
	assert_int_equal(fedkeys_list(t->dir, "example.com", &keys, &n, &error), 0);
	CHECK_INT("domain without keys", n, 0);
	fedkeys_list_free(&keys);
	check_done();
}

static void
rewrite_index(struct tmp *t, const char *from, const char *to)
{
	char buf[4096], out[4096], *at;
	ssize_t len;
	int fd = open(file_in(t, t->dir, "index"), O_RDWR);

	assert_true(fd >= 0);
	len = read(fd, buf, sizeof(buf) - 1);
	assert_true(len > 0);
	buf[len] = '\0';
	assert_non_null(at = strstr(buf, from));
	snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, out, strlen(out), 0), (ssize_t)strlen(out));
	close(fd);
}

static void
test_load_and_sign(void **state)
{
	struct tmp *t = *state;
	static const unsigned char msg[] = "signature base";
	unsigned char sig[64], pub[32];
	struct fedkeys_key k, other;
	const char *error = NULL;
	EVP_PKEY *priv = NULL, *pubkey;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t siglen = sizeof(sig), publen = sizeof(pub);
	char b64[48], b64other[48];

	assert_int_equal(fedkeys_make(t->dir, "example.net", "s1", NOW, &k, &error), 0);
	CHECK_INT("load", fedkeys_load(t->dir, "example.net", "s1", &priv, &error), 0);
	assert_non_null(priv);
	assert_int_equal(EVP_PKEY_get_raw_public_key(priv, pub, &publen), 1);
	CHECK_INT("the index's public key", memcmp(pub, k.pub, 32), 0);
	/* it signs, and the public key in the index verifies */
	assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, priv), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(md);
	pubkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k.pub, 32);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pubkey), 1);
	CHECK_INT("verifies", EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pubkey);
	EVP_PKEY_free(priv);

	CHECK_INT("unknown", fedkeys_load(t->dir, "example.net", "s9", &priv, &error),
	          FEDKEYS_NOKEY);

	/* an index whose public key is not the file's */
	assert_int_equal(fedkeys_make(t->dir, "example.net", "s2", NOW, &other, &error), 0);
	EVP_EncodeBlock((unsigned char *)b64, k.pub, 32);
	EVP_EncodeBlock((unsigned char *)b64other, other.pub, 32);
	rewrite_index(t, b64, b64other);
	priv = NULL;
	CHECK_INT("mismatch", fedkeys_load(t->dir, "example.net", "s1", &priv, &error), -1);
	CHECK_HAS("mismatch", error, "does not match the public key in the index");
	CHECK_INT("no key handed out", priv == NULL, 1);
	rewrite_index(t, b64other, b64);

	/* a key file others may read */
	assert_int_equal(chmod(file_in(t, t->dir, "s1._msgstatus-key.example.net.pem"), 0644), 0);
	CHECK_INT("readable", fedkeys_load(t->dir, "example.net", "s1", &priv, &error), -1);
	CHECK_HAS("readable", error, "is accessible to others");
	assert_int_equal(chmod(t->path, 0600), 0);
	CHECK_INT("fixed", fedkeys_load(t->dir, "example.net", "s1", &priv, &error), 0);
	EVP_PKEY_free(priv);
	check_done();
}

static void
test_damaged(void **state)
{
	static const struct {
		const char *from, *to, *error;
	} rows[] = {
	        {" signing ", " active ", "line 2: state is not signing"},
	        {" signing ", "  signing ", "line 2: expected six fields"},
	        {"example.net s1", "example.net ../s1", "line 2: not a valid selector"},
	        {"example.net s1", "Example.net s1", "line 2: not a valid domain"},
	        {" 1765017000000 ", " 0x1 ", "line 2: times are not milliseconds"},
	        {" published ", " signing ", "line 3: a second signing key for example.net"},
	        {"example.net s2", "example.net s1", "line 3: a key listed twice"},
	        {"=\n", "\n", "line 2: public key is not the base64"},
	};
	struct tmp *t = *state;
	struct fedkeys_key k, *keys;
	const char *error = NULL;
	size_t n;
	char dirmode[16];

	assert_int_equal(fedkeys_make(t->dir, "example.net", "s1", NOW, &k, &error), 0);
	assert_int_equal(fedkeys_make(t->dir, "example.net", "s2", NOW + 1, &k, &error), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char saved[4096];
		ssize_t len;
		int fd = open(file_in(t, t->dir, "index"), O_RDONLY);

		assert_true(fd >= 0);
		assert_true((len = read(fd, saved, sizeof(saved))) > 0);
		close(fd);
		rewrite_index(t, rows[i].from, rows[i].to);
		error = NULL;
		CHECK_INT(rows[i].error, fedkeys_list(t->dir, NULL, &keys, &n, &error), -1);
		CHECK_HAS(rows[i].error, error, rows[i].error);
		CHECK_INT(rows[i].error, fedkeys_make(t->dir, "example.net", "s3", NOW, &k, &error),
		          -1);
		fd = open(file_in(t, t->dir, "index"), O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, saved, (size_t)len), len);
		close(fd);
	}
	CHECK_INT("repaired", fedkeys_list(t->dir, NULL, &keys, &n, &error), 0);
	CHECK_INT("two keys", n, 2);
	fedkeys_list_free(&keys);
	/* a directory others may write to */
	assert_int_equal(chmod(t->dir, 0770), 0);
	snprintf(dirmode, sizeof(dirmode), "mode 0770");
	CHECK_INT("group-writable dir", fedkeys_list(t->dir, NULL, &keys, &n, &error), -1);
	CHECK_HAS("group-writable dir", error, dirmode);
	CHECK_INT("relative dir", fedkeys_list("keys", NULL, &keys, &n, &error), -1);
	CHECK_HAS("relative dir", error, "expected an absolute path");
	check_done();
}

static void
test_records(void **state)
{
	struct tmp *t = *state;
	struct fedkeys_key k, *keys;
	struct mbuf out = MBUF_INIT;
	const char *error = NULL;
	char prev[FEDREC_SELECTOR_MAX + 1], long_txt[301];
	bool made, already;
	size_t n;

	assert_int_equal(fedkeys_make(t->dir, "example.net", "s1", NOW, &k, &error), 0);
	assert_int_equal(fedkeys_rotate(t->dir, "example.net", "s2", NOW, &made, prev, &error), 0);
	assert_int_equal(fedkeys_rotate(t->dir, "example.net", "s3", NOW, &made, prev, &error), 0);
	assert_int_equal(fedkeys_retire(t->dir, "example.net", "s1", NOW, &already, &error), 0);
	assert_int_equal(fedkeys_list(t->dir, NULL, &keys, &n, &error), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		struct fedrec_msk in = {.revoked = keys[i].state == FEDKEYS_RETIRED}, back;
		char txt[FEDREC_TXT_MAX + 1];

		memcpy(in.key, keys[i].pub, 32);
		fedrec_format_msk(&in, txt);
		CHECK_INT(keys[i].selector, fedrec_parse_msk(txt, strlen(txt), &back, &error), 0);
		CHECK_INT(keys[i].selector, back.revoked, keys[i].state == FEDKEYS_RETIRED);
		if (!back.revoked)
			CHECK_INT(keys[i].selector, memcmp(back.key, keys[i].pub, 32), 0);
	}
	fedkeys_list_free(&keys);

	fedkeys_zone_txt("s1._msgstatus-key.example.net", 3600, "v=MSK1; k=ed25519; p=", &out);
	CHECK_STR("zone line", mbuf_str(&out),
	          "s1._msgstatus-key.example.net.\t3600\tIN\tTXT\t\"v=MSK1; k=ed25519; p=\"\n");
	mbuf_reset(&out);
	/* longer than one character-string: split at 255 bytes; quotes escaped */
	memset(long_txt, 'a', 300);
	long_txt[300] = '\0';
	long_txt[254] = '"';
	fedkeys_zone_txt("_msgstatus.example.net", 60, long_txt, &out);
	CHECK_HAS("split", mbuf_str(&out), "a\\\"\" \"aaa");
	CHECK_INT("split length", out.len,
	          strlen("_msgstatus.example.net.\t60\tIN\tTXT\t") + 300 + 1 + 5 + 1);
	mbuf_free(&out);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_make, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_untrusted_names, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rotate_retire, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_load_and_sign, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
