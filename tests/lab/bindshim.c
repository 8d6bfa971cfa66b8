/*
 * bindshim.c - LD_PRELOAD object that keeps servers on loopback.
 *
 * Orthanc 1.10.1 has no bind-address setting: its HTTP server (civetweb) and
 * its DICOM server (DCMTK) bind the wildcard address.  Preloaded into such a
 * process, this object wraps bind(2):
 *
 *   0.0.0.0            -> 127.0.0.1
 *   ::                 -> ::1
 *   ::ffff:0.0.0.0     -> ::ffff:127.0.0.1
 *
 * Other addresses are passed through, unless DIANA_BINDSHIM_STRICT=1 is set
 * in the environment: then a bind() to any non-loopback IPv4/IPv6 address
 * fails with EADDRNOTAVAIL, so nothing can ever listen beyond loopback.
 * DIANA_BINDSHIM_DEBUG=1 logs every rewritten or refused bind() to stderr.
 *
 * Used by tests/lab/lab.sh only; never linked into libdiana.
 * SPDX-License-Identifier: MIT
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

/*
 * glibc declares bind() with a transparent union argument when _GNU_SOURCE is
 * on; define the wrapper under another C name and give it the assembler name
 * "bind", so the C prototypes never have to match.
 */
__attribute__((visibility("default")))
int diana_bindshim_bind(int fd, const struct sockaddr *addr, socklen_t len) __asm__("bind");

static int env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] == '1';
}

static void debug_log(const char *what, const struct sockaddr *sa)
{
	char buf[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (!env_flag("DIANA_BINDSHIM_DEBUG"))
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
		port = ntohs(in6->sin6_port);
	}
	fprintf(stderr, "diana-bindshim: %s %s port %u\n", what, buf, port);
}

static int v4_is_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

static int v6_is_v4mapped_any(const struct in6_addr *a)
{
	static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return memcmp(a->s6_addr, prefix, 12) == 0 &&
	       a->s6_addr[12] == 0 && a->s6_addr[13] == 0 &&
	       a->s6_addr[14] == 0 && a->s6_addr[15] == 0;
}

static int v6_is_loopback(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_LOOPBACK(a))
		return 1;
	/* ::ffff:127.x.y.z */
	return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

int diana_bindshim_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	static bind_fn real_bind;
	bind_fn next = __atomic_load_n(&real_bind, __ATOMIC_ACQUIRE);
	int strict = env_flag("DIANA_BINDSHIM_STRICT");

	if (!next) {
		void *sym = dlsym(RTLD_NEXT, "bind");
		if (!sym) {
			errno = ENOSYS;
			return -1;
		}
		/* ISO C forbids object-to-function pointer casts; POSIX allows this copy */
		memcpy(&next, &sym, sizeof next);
		__atomic_store_n(&real_bind, next, __ATOMIC_RELEASE);
	}

	if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;
		memcpy(&in, addr, sizeof in);
		if (in.sin_addr.s_addr == htonl(INADDR_ANY)) {
			in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			debug_log("rewrote 0.0.0.0 ->", (const struct sockaddr *)(const void *)&in);
			return next(fd, (const struct sockaddr *)(const void *)&in, sizeof in);
		}
		if (strict && !v4_is_loopback(&in.sin_addr)) {
			debug_log("refused", addr);
			errno = EADDRNOTAVAIL;
			return -1;
		}
	} else if (addr && addr->sa_family == AF_INET6 &&
		   len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;
		memcpy(&in6, addr, sizeof in6);
		if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) {
			in6.sin6_addr = in6addr_loopback;
			debug_log("rewrote :: ->", (const struct sockaddr *)(const void *)&in6);
			return next(fd, (const struct sockaddr *)(const void *)&in6, sizeof in6);
		}
		if (v6_is_v4mapped_any(&in6.sin6_addr)) {
			in6.sin6_addr.s6_addr[12] = 127;
			in6.sin6_addr.s6_addr[15] = 1;
			debug_log("rewrote ::ffff:0.0.0.0 ->",
				  (const struct sockaddr *)(const void *)&in6);
			return next(fd, (const struct sockaddr *)(const void *)&in6, sizeof in6);
		}
		if (strict && !v6_is_loopback(&in6.sin6_addr)) {
			debug_log("refused", addr);
			errno = EADDRNOTAVAIL;
			return -1;
		}
	} else if (strict && addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
		/* truncated address structure: let nothing odd through */
		errno = EINVAL;
		return -1;
	}
	return next(fd, addr, len);
}
