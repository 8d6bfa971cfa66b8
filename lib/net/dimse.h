/*
 * libdiana - internal DIMSE client and storage SCP (DICOM networking over
 * DCMTK's dcmnet; DCMTK appears only in lib/net/dimse*.cpp).
 * Not installed; `diana__` names may change at any time. See doc/dimse.md.
 *
 * One handle = one peer (called AE title at host:port). Query/retrieve
 * operations (echo, find, get, move) share one association that is opened
 * on first use and kept open across operations; it proposes Verification,
 * FIND/MOVE/GET in the patient and study root models and, for C-GET, the
 * common storage SOP classes with the SCP role. A dropped or peer-released
 * association is re-opened on the next operation. C-STORE opens its own
 * association with the presentation contexts of the files to send.
 *
 * Every socket gets TCP_NODELAY (a DCMTK transport layer of ours; DCMTK
 * only does it on TCP_NODELAY=1 in the environment). DCMTK's own log
 * (oflog, "dcmtk.*" loggers) goes to the diana log, domain "dcmtk", at
 * debug level and only for warnings and errors (its debug output dumps
 * datasets); nothing is printed on stderr. SIGPIPE never reaches the host:
 * its disposition is restored after DCMTK's network initialisation sets it
 * to SIG_IGN, and DCMTK I/O runs with SIGPIPE blocked in the calling thread.
 *
 * Errors (one line, no element values: AE titles, host, port, DIMSE
 * statuses only): DIANA_ECONNECT (name not resolved, refused, unreachable
 * within the connect timeout, connection lost), DIANA_EAUTH (association
 * rejected, with the reject reason), DIANA_ETIMEDOUT (no answer within the
 * ACSE or DIMSE timeout), DIANA_EPACS (a failure status, "status 0xA801
 * (...)", or an A-ABORT from the peer), DIANA_EUNSUPPORTED (the peer did
 * not accept the presentation context an operation needs), DIANA_EDICOM
 * (malformed keys or answers), DIANA_ECANCELLED (diana__dimse_cancel()),
 * DIANA_EUSER or the callback's negative value (a callback returned
 * non-zero), DIANA_EINVAL, DIANA_ENOMEM, DIANA_EIO.
 *
 * Thread safety: a handle may move between threads but must not be used by
 * two at once, except diana__dimse_cancel() (any thread, any time).
 * Callbacks run on the calling thread. Handles are independent: several
 * threads may each run their own.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DIMSE_H
#define DIANA_DIMSE_H

#include <stddef.h>
#include <stdint.h>

#include <diana/dataset.h>

#include "../core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct diana__dimse diana__dimse;

/** Query/retrieve information models. */
enum {
	DIANA__DIMSE_STUDY_ROOT = 0, /* default */
	DIANA__DIMSE_PATIENT_ROOT = 1
};

/** Query/retrieve levels (Query/Retrieve Level (0008,0052) is set from it). */
enum {
	DIANA__DIMSE_LEVEL_PATIENT = 0,
	DIANA__DIMSE_LEVEL_STUDY = 1,
	DIANA__DIMSE_LEVEL_SERIES = 2,
	DIANA__DIMSE_LEVEL_IMAGE = 3
};

/** scp_port value: let the system choose a free port (see diana__dimse_scp_port()). */
#define DIANA__DIMSE_ANY_PORT (-1)

typedef struct diana__dimse_options {
	const char *host;            /* peer host name or address (required) */
	int port;                    /* peer port, 1..65535 (required) */
	const char *called_aet;      /* peer AE title (required, 1..16 characters) */
	const char *calling_aet;     /* our AE title; NULL: "DIANA" */
	int64_t connect_timeout_ms;  /* TCP connect; 0: 10000. DCMTK counts whole seconds
	                                (rounded up), process-wide: concurrent handles with
	                                different values may get each other's */
	int64_t acse_timeout_ms;     /* association request/accept/release; 0: 30000 (whole s) */
	int64_t dimse_timeout_ms;    /* longest silence of the peer within an operation;
	                                0: 60000 (whole s) */
	uint32_t max_pdu;            /* largest PDU we receive; 0: 65536 (4096..131072) */
	/* Storage SCP for C-MOVE to ourselves. Bound by diana__dimse_new(), listening
	   until diana__dimse_free(); associations are accepted while a C-MOVE runs. */
	int scp_port;                /* 0: no SCP; DIANA__DIMSE_ANY_PORT; else the port */
	const char *scp_bind;        /* address to listen on; NULL: "127.0.0.1" */
	const char *scp_aet;         /* the SCP's AE title (the move destination); NULL: calling_aet */
	const char *temp_dir;        /* received instances land here; NULL: $TMPDIR or /tmp */
} diana__dimse_options;

#define DIANA__DIMSE_OPTIONS_INIT { NULL, 0, NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL }

/**
 * Create a handle (no network traffic yet, except that the SCP listens when
 * scp_port is set: DIANA_EIO / DIANA_EINVAL when it cannot bind).
 */
int diana__dimse_new(diana__dimse **out, const diana__dimse_options *opts);
/** Release the association (A-RELEASE, abort if that fails), stop the SCP, free. NULL ok. */
void diana__dimse_free(diana__dimse *d);
/** Release the association now; the next operation opens a new one. */
int diana__dimse_close(diana__dimse *d);
/** The port the SCP listens on (useful with DIANA__DIMSE_ANY_PORT), 0 if none. */
int diana__dimse_scp_port(const diana__dimse *d);
/**
 * Ask the running operation (or the next one) to stop: it sends C-CANCEL,
 * drains the peer's answers and returns DIANA_ECANCELLED. Safe from any
 * thread, e.g. a signal handler or a watchdog. Cleared when an operation
 * returns.
 */
void diana__dimse_cancel(diana__dimse *d);

/** C-ECHO. */
int diana__dimse_echo(diana__dimse *d);

/** Keys of a C-FIND, C-GET or C-MOVE. */
typedef struct diana__dimse_query {
	int root;                   /* DIANA__DIMSE_STUDY_ROOT or DIANA__DIMSE_PATIENT_ROOT */
	int level;                  /* DIANA__DIMSE_LEVEL_* */
	const diana_dataset *keys;  /* matching and return keys (group 0002 ignored), or NULL */
	const char *keys_json;      /* or the same as DICOM JSON (used when keys is NULL) */
} diana__dimse_query;

/** One C-FIND answer, borrowed for the duration of the call; non-zero stops (C-CANCEL). */
typedef int (*diana__dimse_answer_fn)(const diana_dataset *answer, void *user_data);

/**
 * C-FIND: every pending answer is handed to `fn` as a dataset (its
 * Specific Character Set honoured by the dataset API). `count` (optional)
 * receives the number of answers delivered.
 */
int diana__dimse_find(diana__dimse *d, const diana__dimse_query *q,
                      diana__dimse_answer_fn fn, void *user_data, size_t *count);

/** A received instance: a Part 10 file written as received (no decoding). */
typedef struct diana__dimse_instance {
	const char *path;                /* file in temp_dir, mode 0600; rename() it to keep
	                                    it, otherwise it is removed after the callback */
	const char *sop_class_uid;
	const char *sop_instance_uid;
	const char *transfer_syntax_uid; /* as negotiated, never transcoded by us */
	uint64_t size;                   /* bytes of the file */
	const char *calling_aet;         /* who sent it (C-GET: the peer; C-MOVE: the storage SCU) */
} diana__dimse_instance;

/** Called once per received instance; non-zero cancels the retrieve (C-CANCEL). */
typedef int (*diana__dimse_instance_fn)(const diana__dimse_instance *inst, void *user_data);

/** Outcome of a retrieve or a store. */
typedef struct diana__dimse_result {
	uint32_t completed; /* sub-operations the peer reports completed (store: files stored) */
	uint32_t failed;    /* ... failed */
	uint32_t warning;   /* ... completed with a warning */
	uint32_t received;  /* instances handed to the callback */
	uint16_t status;    /* final DIMSE status (store: the first failure status, or 0) */
} diana__dimse_result;

/**
 * C-GET: the instances come back on the same association (no inbound port)
 * and are streamed to temporary files handed to `fn` one at a time.
 * A final status other than success is DIANA_EPACS (0xB000 when some
 * sub-operations failed: `res` has the counts).
 */
int diana__dimse_get(diana__dimse *d, const diana__dimse_query *q,
                     diana__dimse_instance_fn fn, void *user_data,
                     diana__dimse_result *res);

/**
 * C-MOVE to `destination_aet`, or to our own SCP when NULL (then `fn`
 * receives the instances as with C-GET; the peer must know the SCP's AE
 * title with our host and port). Needs scp_port for a NULL destination.
 */
int diana__dimse_move(diana__dimse *d, const diana__dimse_query *q, const char *destination_aet,
                      diana__dimse_instance_fn fn, void *user_data,
                      diana__dimse_result *res);

/** Per-file report of diana__dimse_store(): the DIMSE status; non-zero stops. */
typedef int (*diana__dimse_store_fn)(size_t index, const char *path, uint16_t status,
                                     void *user_data);

/**
 * C-STORE of DICOM files (Part 10, or raw Little Endian datasets), each sent
 * in its own transfer syntax (never transcoded, except between the two
 * uncompressed little endian ones when the peer accepts only the other).
 * The files' headers are read first (DIANA_ENOTFOUND / DIANA_EIO /
 * DIANA_EDICOM before anything is sent), then one association carries all
 * presentation contexts needed (more than 127 distinct SOP class/transfer
 * syntax pairs: one association per 127). A failure status on one file does
 * not stop the others: the call then returns DIANA_EPACS with the count and
 * the first status.
 */
int diana__dimse_store(diana__dimse *d, const char *const *paths, size_t n,
                       diana__dimse_store_fn fn, void *user_data,
                       diana__dimse_result *res);

/* ===================== standalone storage SCP (lib/net/dimse_scp.cpp) =====================
 * A C-STORE/C-ECHO listener of its own (unlike the SCP above, which runs only
 * while a C-MOVE does). A listener thread accepts associations and serves
 * each in a thread of its own (at most max_associations at once; more are
 * rejected, transient, "local limit exceeded"). Called AE title must be
 * `aet`; calling AE titles are free or from an allow-list. Accepted: Verification and
 * every storage SOP class, in the first transfer syntax the peer proposes among the
 * uncompressed (implicit/explicit little endian, explicit big endian, deflated) and
 * the common compressed ones (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000,
 * HTJ2K, RLE); never transcoded. Each instance is received into dir/.partial/ (mode 0600,
 * as received), synced, then renamed to dir/<StudyInstanceUID>/<SOPInstanceUID>.dcm
 * (UIDs: digits and dots, at most 64 characters; anything else is refused with
 * 0xC000) before the C-STORE response: success means the file is in place; a
 * file that cannot be written gets 0xA700. Errors: one line, no element values.
 * Thread safety: new/free on one thread; port/active/received from any thread.
 */
typedef struct diana__storescp diana__storescp;

typedef struct diana__storescp_options {
	const char *bind;                 /* address to listen on; NULL: "127.0.0.1" */
	int port;                         /* 1..65535 or DIANA__DIMSE_ANY_PORT (required) */
	const char *aet;                  /* our (called) AE title; NULL: "DIANA" */
	const char *dir;                  /* where studies land (required; created 0700) */
	const char *const *calling_aets;  /* NULL-terminated allow-list; NULL: any peer */
	int max_associations;             /* in parallel; 0: 4 */
	int64_t acse_timeout_ms;          /* association negotiation; 0: 30000 */
	int64_t dimse_timeout_ms;         /* longest silence within an operation, and the
	                                     idle time after which an association is closed;
	                                     0: 60000 */
	uint32_t max_pdu;                 /* largest PDU we receive; 0: 65536 */
} diana__storescp_options;

#define DIANA__STORESCP_OPTIONS_INIT { NULL, 0, NULL, NULL, NULL, 0, 0, 0, 0 }

/** Bind, listen and start the listener thread. DIANA_EINVAL, DIANA_EIO (cannot bind or create dir). */
int diana__storescp_new(diana__storescp **out, const diana__storescp_options *opts);
/** The port listened on (useful with DIANA__DIMSE_ANY_PORT). */
int diana__storescp_port(const diana__storescp *scp);
/** 1 while an open association is receiving an instance and its last stored instance
    belonged to `study_uid` (a study still arriving), else 0. */
int diana__storescp_active(diana__storescp *scp, const char *study_uid);
/** Instances stored so far. */
uint64_t diana__storescp_received(diana__storescp *scp);
/** Stop the listener, abort open associations, join the threads, close the socket. NULL ok. */
void diana__storescp_free(diana__storescp *scp);
/* =================== end of the standalone storage SCP =================== */

#ifdef __cplusplus
}
#endif

#endif /* DIANA_DIMSE_H */
