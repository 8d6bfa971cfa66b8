/*
 * libdiana - external command models: fork/exec with the study folder as
 * the last argument, a timeout that kills the whole process group, the JSON
 * result read from stdout (bounded). Its stderr goes to the debug log as a
 * byte count only (it may hold patient data).
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline_int.h"

#define MAX_OUTPUT (1u << 20)

int diana__model_command(const diana__command_model *m, const char *study_dir, char **result)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 };
	diana__buf b = DIANA__BUF_INIT;
	size_t argc = 0, errbytes = 0, i;
	char **argv;
	pid_t pid;
	int64_t deadline;
	int status = 0, rc = 0, exited = 0, out_open = 1, err_open = 1;
	cJSON *j;

	*result = NULL;
	while (m->argv[argc])
		argc++;
	argv = calloc(argc + 2, sizeof(*argv));
	if (!argv)
		return diana__error_oom();
	for (i = 0; i < argc; i++)
		argv[i] = m->argv[i];
	argv[argc] = (char *)study_dir;
	if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
		rc = diana__error_errno(errno, "model pipes");
		goto done;
	}
	pid = fork();
	if (pid < 0) {
		rc = diana__error_errno(errno, "starting the model");
		goto done;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		setpgid(0, 0);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid);
	close(out[1]);
	close(err[1]);
	out[1] = err[1] = -1;
	deadline = diana__now_ms() + (m->timeout_ms > 0 ? m->timeout_ms : 600000);
	while (out_open || err_open) {
		struct pollfd pf[2];
		int nf = 0, left = (int)(deadline - diana__now_ms());
		if (left <= 0) {
			rc = diana__error_set(DIANA_ETIMEDOUT, "the model did not finish within %lld s",
			                      (long long)((m->timeout_ms > 0 ? m->timeout_ms : 600000) / 1000));
			break;
		}
		if (out_open) {
			pf[nf].fd = out[0];
			pf[nf++].events = POLLIN;
		}
		if (err_open) {
			pf[nf].fd = err[0];
			pf[nf++].events = POLLIN;
		}
		if (poll(pf, (nfds_t)nf, left > 200 ? 200 : left) < 0 && errno != EINTR) {
			rc = diana__error_errno(errno, "reading the model's output");
			break;
		}
		for (i = 0; i < (size_t)nf; i++) {
			char buf[8192];
			ssize_t r;
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pf[i].fd, buf, sizeof(buf));
			if (r <= 0) {
				if (pf[i].fd == out[0])
					out_open = 0;
				else
					err_open = 0;
				continue;
			}
			if (pf[i].fd == out[0]) {
				if (b.len + (size_t)r > MAX_OUTPUT) {
					rc = diana__error_set(DIANA_EINVAL, "the model printed more than %u bytes", MAX_OUTPUT);
					out_open = 0;
				} else {
					diana__buf_put(&b, buf, (size_t)r);
				}
			} else {
				errbytes += (size_t)r;
			}
		}
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	/* reap (the timeout also bounds a child that closed its pipes early) */
	while (!exited) {
		pid_t w = waitpid(pid, &status, rc < 0 ? 0 : WNOHANG);
		if (w == pid) {
			exited = 1;
		} else if (w < 0 && errno != EINTR) {
			break;
		} else if (w == 0) {
			if (diana__now_ms() > deadline) {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				rc = diana__error_set(DIANA_ETIMEDOUT, "the model did not finish in time");
			} else {
				usleep(20000);
			}
		}
	}
	diana__log(DIANA_LOG_DEBUG, "pipeline", "model: %zu bytes on stdout, %zu on stderr", b.len, errbytes);
	if (rc == 0) {
		if (WIFSIGNALED(status))
			rc = diana__error_set(DIANA_EUSER, "the model was killed by signal %d", WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			rc = diana__error_set(DIANA_EUSER, "the model command could not be started");
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = diana__error_set(DIANA_EUSER, "the model exited with status %d", WEXITSTATUS(status));
	}
	if (rc == 0) {
		j = b.data ? cJSON_ParseWithLength(b.data, b.len) : NULL;
		if (!cJSON_IsObject(j)) {
			rc = diana__error_set(DIANA_EINVAL, "the model's output is not a JSON object");
		} else {
			*result = cJSON_PrintUnformatted(j);
			if (!*result)
				rc = diana__error_oom();
		}
		cJSON_Delete(j);
	}
done:
	for (i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	diana__buf_dispose(&b);
	free(argv);
	return rc;
}
