/*
 * child - run a piece of a unit test in a child process, for what ends a process: a
 * msg_fatal or msg_panic, a sanitizer's report. Include after <cmocka.h>.
 */
#ifndef CHILD_H
#define CHILD_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Run fn in a child process with its stderr in a temporary file; return the wait status
 * and what it wrote in out (NUL-terminated, truncated to outsize). The child exits 0 if
 * fn returns.
 */
static inline int
run_child(void (*fn)(void), char *out, size_t outsize)
{
	char path[] = "/tmp/msgstatus-unit.XXXXXX";
	int fd = mkstemp(path), status = 0;
	pid_t pid;
	ssize_t n;

	assert_true(fd >= 0);
	unlink(path);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	n = pread(fd, out, outsize - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return status;
}

#endif
