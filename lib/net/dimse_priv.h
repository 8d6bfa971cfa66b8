/*
 * libdiana - private C++ declarations shared by lib/net/dimse*.cpp (DCMTK).
 * Included by nothing else. No exception leaves these files: every entry
 * point in dimse.h catches everything (DIANA_ERROR / DIANA_ENOMEM).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DIMSE_PRIV_H
#define DIANA_DIMSE_PRIV_H

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dimse.h>

#include <signal.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "dimse.h"

struct diana__dimse {
	/* options, copied */
	std::string host, called, calling, scp_aet, scp_bind, temp_dir;
	int port = 0;
	int connect_s = 10, acse_s = 30, dimse_s = 60;
	int64_t dimse_ms = 60000;
	uint32_t max_pdu = 65536;
	std::string peer; /* "CALLED@host:port", for messages */

	/* the query/retrieve association, opened on demand */
	T_ASC_Network *net = nullptr;
	T_ASC_Association *assoc = nullptr;
	DIC_US next_msg_id = 1;

	/* storage SCP for C-MOVE: our own listening socket; DCMTK gets each
	   accepted connection through dcmExternalSocketHandle */
	int listen_fd = -1;
	int scp_port = 0;
	T_ASC_Network *scp_net = nullptr;

	std::atomic<int> cancel{0};
};

namespace diana_dimse {

/** Serialises accepts of every SCP: DCMTK passes accepted sockets through a process-wide
 *  variable (dcmExternalSocketHandle). Defined in dimse_qr.cpp. */
extern std::mutex g_accept_lock;


/* One-time DCMTK set-up (log routing, dictionary check, SIGPIPE). 0 or error. */
int global_init();

/* Blocks SIGPIPE in this thread while alive and discards one raised meanwhile. */
class SigpipeGuard {
public:
	SigpipeGuard();
	~SigpipeGuard();
	SigpipeGuard(const SigpipeGuard &) = delete;
	SigpipeGuard &operator=(const SigpipeGuard &) = delete;

private:
	sigset_t old_;
	bool was_pending_;
};

/* Record an error for a DCMTK condition; `what` names the step. Returns the code. */
int cond_error(const diana__dimse *d, const OFCondition &c, const char *what);
/* Code for a condition (no message). */
int cond_code(const OFCondition &c);

/* Association parameters with our titles and addresses (NULL: error set). */
T_ASC_Parameters *new_params(diana__dimse *d);
/* Request an association; `params` belongs to it afterwards (freed on failure). */
int request_assoc(diana__dimse *d, T_ASC_Parameters *params, T_ASC_Association **out);
/* Ensure the query/retrieve association is open. */
int ensure_assoc(diana__dimse *d);
/* How an association ends. Nothing here waits on an unresponsive peer:
   DCMTK's abort waits up to 10 s for the peer to close the connection, so
   the read side is shut down first; a silent or vanished peer gets no PDU. */
enum End {
	END_RELEASE,        /* A-RELEASE (abort if that fails) */
	END_ABORT,          /* A-ABORT: the peer is talking nonsense */
	END_CLOSE,          /* close the connection: the peer is silent or gone */
	END_PEER_RELEASED   /* we answered the peer's A-RELEASE-RQ (or rejected it): let it close */
};
void end_assoc(T_ASC_Association *&a, End how);
/* END_CLOSE after a timeout or a lost connection, END_ABORT otherwise. */
End end_for(int rc);
/* End and forget the query/retrieve association. */
void drop_assoc(diana__dimse *d, End how);
DIC_US next_id(diana__dimse *d);

/* Wait until one of `assocs` (entries may be NULL) has data, or `listen_fd`
   (-1: none) has a connection, for at most `ms` milliseconds. Sets ready[i]
   (size n) and *listen_ready. Returns 1 when something is ready, 0 on timeout. */
int wait_any(T_ASC_Association *const *assocs, size_t n, int listen_fd, int ms,
             std::vector<char> &ready, bool *listen_ready);

/* Identifier (keys + level) for a query; *out owned by the caller. */
int make_identifier(const diana__dimse_query *q, DcmDataset **out);
/* A DCMTK dataset as a diana_dataset (through a Part 10 buffer). */
int to_diana(DcmDataset *ds, diana_dataset **out);

/* Receiving instances (C-GET on the main association, C-MOVE on sub-associations). */
struct Receiver {
	diana__dimse *d = nullptr;
	diana__dimse_instance_fn fn = nullptr;
	void *user_data = nullptr;
	uint32_t received = 0;
	int stop_rc = 0;      /* non-zero once the callback or an I/O error asked to stop */
	std::string stop_msg; /* the error message of that moment */
	bool io_failed = false;
};
/* Handle one C-STORE-RQ received on `a`: the dataset goes to a temporary
   file, then to the callback. Returns 0, or an error for the association
   (network failure: the association must be dropped). */
int receive_store(Receiver &r, T_ASC_Association *a, T_ASC_PresentationContextID pc,
                  T_DIMSE_C_StoreRQ *rq);

/* A plain TCP connection whose socket we can poll(). */
class NodelayConnection : public DcmTCPConnection {
public:
	explicit NodelayConnection(DcmNativeSocketType s) : DcmTCPConnection(s) {}
	DcmNativeSocketType fd() { return getSocket(); }
};

/* TCP_NODELAY on every connection DCMTK makes or accepts (see dimse.cpp). */
class NodelayLayer : public DcmTransportLayer {
public:
	/* io_timeout_s bounds every blocking send and receive (SO_SNDTIMEO,
	   SO_RCVTIMEO; DCMTK's own default is a process-wide 60 s) */
	explicit NodelayLayer(int io_timeout_s) : io_timeout_s_(io_timeout_s) {}
	DcmTransportConnection *createConnection(DcmNativeSocketType sock, OFBool secure) override;

private:
	int io_timeout_s_;
};

/* A timeout in ms as whole seconds for DCMTK (<= 0: `dflt`; at most a day). */
int ms_to_s(int64_t ms, int64_t dflt);

/* An AE title: 1 to 16 printable characters, no backslash. */
bool aet_ok(const char *s);

/* A non-blocking listening TCP socket on `addr`:`port` (0: any free port,
   written back to `port`); errors name `what` ("storage SCP"...). */
int listen_socket(const std::string &addr, int &port, int backlog, const char *what, int *fd_out);

/* Storage SCP. */
int scp_listen(diana__dimse *d);
void scp_close(diana__dimse *d);
/* Accept one pending connection and negotiate a storage association; *out
   is NULL when the connection was refused (not an error for the move). */
int scp_accept(diana__dimse *d, T_ASC_Association **out);

/* "0xA801 (Refused: Move Destination unknown)" */
std::string status_text(uint16_t status, const char *(*describe)(Uint16));

/* Presentation context table of the query/retrieve association. */
void add_qr_contexts(T_ASC_Parameters *params);

} /* namespace diana_dimse */

#endif /* DIANA_DIMSE_PRIV_H */
