/*
 * dropfile - hand events to statusd through a directory. See dropfile.h.
 */
#include "dropfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "randid.h"
#include "rfc3339.h"

int
dropfile_write(const char *dir, const char *data, size_t len, const char **error_r)
{
	char tmp[4096], final[4096], rnd[RANDID_LEN + 1];
	size_t done = 0;
	int fd;

	randid_new(rnd);
	rnd[10] = '\0';
	if (snprintf(tmp, sizeof(tmp), "%s/.tmp-%lld-%ld-%s", dir, (long long)time_now_ms(),
	             (long)getpid(), rnd) >= (int)sizeof(tmp) ||
	    snprintf(final, sizeof(final), "%s/%lld-%ld-%s" DROPFILE_SUFFIX, dir,
	             (long long)time_now_ms(), (long)getpid(), rnd) >= (int)sizeof(final)) {
		*error_r = "pickup directory name too long";
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
		*error_r = errfmt("create %s: %s", tmp, strerror(errno));
		return -1;
	}
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = errfmt("write %s: %s", tmp,
			                  n < 0 ? strerror(errno) : "no progress");
			close(fd);
			unlink(tmp);
			return -1;
		}
		done += (size_t)n;
	}
	if (close(fd) < 0 || rename(tmp, final) < 0) {
		*error_r = errfmt("finish %s: %s", final, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

bool
dropfile_name_ok(const char *name)
{
	size_t len = strlen(name), slen = sizeof(DROPFILE_SUFFIX) - 1;

	return name[0] != '.' && len > slen && strcmp(name + len - slen, DROPFILE_SUFFIX) == 0;
}
