/*
 * libdiana - DIMSE query/retrieve: C-FIND, C-GET, C-MOVE, and the storage
 * SCP that receives C-MOVE sub-operations. Every wait is cut in slices so
 * that diana__dimse_cancel() is seen within ~0.2 s; one thread multiplexes
 * the main association, the SCP's listening socket and its associations,
 * so callbacks run on the caller's thread.
 * SPDX-License-Identifier: MIT
 */
#include "dimse_priv.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrmf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dul.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <new>

namespace diana_dimse {

static const int k_slice_ms = 200;

/* dcmExternalSocketHandle is process-wide: one accept at a time, for every SCP of the
   process (the C-MOVE SCP here and the storage SCP of dimse_scp.cpp). */
std::mutex g_accept_lock;

static bool is_pending(uint16_t s)
{
	return s == STATUS_Pending || s == 0xFF01;
}

/* --- receiving one instance -------------------------------------------------- */

static int stop_with(Receiver &r, int rc)
{
	if (!r.stop_rc) {
		r.stop_rc = rc;
		r.stop_msg = diana_error_message();
	}
	return rc;
}

int receive_store(Receiver &r, T_ASC_Association *a, T_ASC_PresentationContextID pc,
                  T_DIMSE_C_StoreRQ *rq)
{
	diana__dimse *d = r.d;
	Uint16 status = STATUS_Success;
	OFCondition c;
	bool received = false;
	std::string path;

	if (!r.stop_rc && d->cancel.load()) /* diana__dimse_cancel() from another thread */
		stop_with(r, diana__error_set(DIANA_ECANCELLED, "retrieve cancelled"));
	if (!r.stop_rc) {
		path = d->temp_dir + "/diana-rx-XXXXXX.dcm";
		int fd = mkstemps(&path[0], 4);
		if (fd < 0) {
			r.io_failed = true;
			stop_with(r, diana__error_set(DIANA_EIO, "cannot create a file in %s: %s",
			                              d->temp_dir.c_str(), strerror(errno)));
			path.clear();
		} else {
			close(fd);
			DcmOutputFileStream *fs = nullptr;
			c = DIMSE_createFilestream(path.c_str(), rq, a, pc, OFTrue, &fs);
			if (c.bad() || !fs) {
				unlink(path.c_str());
				path.clear();
				r.io_failed = true;
				stop_with(r, diana__error_set(DIANA_EIO, "cannot write a file in %s: %s",
				                              d->temp_dir.c_str(), c.text()));
			} else {
				c = DIMSE_receiveDataSetInFile(a, DIMSE_NONBLOCKING, d->dimse_s, &pc, fs,
				                               nullptr, nullptr);
				OFCondition ws = fs->status();
				delete fs;
				if (c.bad()) {
					unlink(path.c_str());
					return cond_error(d, c, "C-STORE sub-operation");
				}
				if (ws.bad()) {
					unlink(path.c_str());
					path.clear();
					r.io_failed = true;
					stop_with(r, diana__error_set(DIANA_EIO, "cannot write a received instance in %s: %s",
					                              d->temp_dir.c_str(), ws.text()));
				} else {
					received = true;
				}
			}
		}
	}
	if (!received) {
		/* cancelled, or nowhere to put it: read and drop the dataset */
		DIC_UL bytes = 0, pdvs = 0;
		c = DIMSE_ignoreDataSet(a, DIMSE_NONBLOCKING, d->dimse_s, &bytes, &pdvs);
		if (c.bad())
			return cond_error(d, c, "C-STORE sub-operation");
		status = STATUS_STORE_Refused_OutOfResources;
	}

	/* Answer first: the instance is on disk, and the peer can prepare the
	   next one while the callback works (it may take a while: de-identify,
	   upload...). A stop asked by the callback applies to what follows. */
	T_DIMSE_C_StoreRSP rsp;
	memset(&rsp, 0, sizeof(rsp));
	rsp.MessageIDBeingRespondedTo = rq->MessageID;
	rsp.DimseStatus = status;
	rsp.DataSetType = DIMSE_DATASET_NULL;
	OFStandard::strlcpy(rsp.AffectedSOPClassUID, rq->AffectedSOPClassUID, sizeof(rsp.AffectedSOPClassUID));
	OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, rq->AffectedSOPInstanceUID,
	                    sizeof(rsp.AffectedSOPInstanceUID));
	rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
	c = DIMSE_sendStoreResponse(a, pc, rq, &rsp, nullptr);
	if (c.bad()) {
		if (received)
			unlink(path.c_str());
		return cond_error(d, c, "C-STORE response");
	}
	if (!received)
		return 0;

	struct stat st;
	memset(&st, 0, sizeof(st));
	stat(path.c_str(), &st);
	T_ASC_PresentationContext pci;
	memset(&pci, 0, sizeof(pci));
	ASC_findAcceptedPresentationContext(a->params, pc, &pci);
	diana__dimse_instance inst;
	inst.path = path.c_str();
	inst.sop_class_uid = rq->AffectedSOPClassUID;
	inst.sop_instance_uid = rq->AffectedSOPInstanceUID;
	inst.transfer_syntax_uid = pci.acceptedTransferSyntax;
	inst.size = (uint64_t)st.st_size;
	inst.calling_aet = a->params->DULparams.callingAPTitle;
	r.received++;
	int cb = r.fn ? r.fn(&inst, r.user_data) : 0;
	unlink(path.c_str()); /* ENOENT when the callback kept it */
	if (cb) {
		if (cb > 0)
			diana__error_set(DIANA_EUSER, "retrieve stopped by the callback");
		stop_with(r, cb < 0 ? cb : DIANA_EUSER);
	}
	return 0;
}

/* --- the storage SCP ---------------------------------------------------------- */

int listen_socket(const std::string &addr, int &port, int backlog, const char *what, int *fd_out)
{
	struct addrinfo hints, *res = nullptr;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	std::string ps = std::to_string(port);
	int g = getaddrinfo(addr.c_str(), ps.c_str(), &hints, &res);
	if (g != 0)
		return diana__error_set(DIANA_EINVAL, "%s bind address %s: %s", what, addr.c_str(), gai_strerror(g));
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return diana__error_set(DIANA_EIO, "%s cannot listen on %s port %d: %s", what, addr.c_str(), port,
		                        strerror(err));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	*fd_out = fd;
	return 0;
}

int scp_listen(diana__dimse *d)
{
	int fd = -1;
	int rc = listen_socket(d->scp_bind, d->scp_port, 16, "SCP", &fd);
	if (rc < 0)
		return rc;
	d->listen_fd = fd;
	diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s listening on %s port %d", d->scp_aet.c_str(),
	           d->scp_bind.c_str(), d->scp_port);
	return 0;
}

void scp_close(diana__dimse *d)
{
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		d->listen_fd = -1;
	}
	if (d->scp_net) {
		std::lock_guard<std::mutex> lock(g_accept_lock);
		ASC_dropNetwork(&d->scp_net);
	}
}

int scp_accept(diana__dimse *d, T_ASC_Association **out)
{
	*out = nullptr;
	int fd = accept4(d->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
			return 0;
		return diana__error_set(DIANA_EIO, "SCP accept failed: %s", strerror(errno));
	}
	if (fd == 0) { /* DCMTK takes only external sockets > 0 */
		int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		close(fd);
		if (fd2 < 0)
			return diana__error_set(DIANA_EIO, "SCP accept failed: %s", strerror(errno));
		fd = fd2;
	}
	T_ASC_Association *a = nullptr;
	OFCondition c;
	{
		std::lock_guard<std::mutex> lock(g_accept_lock);
		/* with an external socket set, an acceptor network creates no
		   listening socket of its own (DCMTK would bind 0.0.0.0) */
		dcmExternalSocketHandle.set(fd);
		if (!d->scp_net) {
			c = ASC_initializeNetwork(NET_ACCEPTOR, 0, d->acse_s, &d->scp_net);
			if (c.good()) {
				DcmTransportLayer *layer = new (std::nothrow) NodelayLayer(d->dimse_s);
				c = layer ? ASC_setTransportLayer(d->scp_net, layer, 1) : EC_MemoryExhausted;
			}
			if (c.bad() && d->scp_net)
				ASC_dropNetwork(&d->scp_net);
		}
		if (d->scp_net)
			c = ASC_receiveAssociation(d->scp_net, &a, (long)d->max_pdu, nullptr, nullptr, OFFalse,
			                           DUL_NOBLOCK, d->acse_s);
		dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
	}
	if (!d->scp_net) {
		close(fd);
		return cond_error(d, c, "SCP network initialisation");
	}
	if (c.bad()) {
		diana__log(DIANA_LOG_DEBUG, "dimse", "SCP %s: incoming association failed: %s",
		           d->scp_aet.c_str(), c.text());
		end_assoc(a, END_CLOSE);
		return 0;
	}
	T_ASC_Parameters *p = a->params;
	const char *called = p->DULparams.calledAPTitle;
	const char *calling = p->DULparams.callingAPTitle;
	if (strcmp(called, d->scp_aet.c_str()) != 0) {
		diana__log(DIANA_LOG_WARNING, "dimse", "SCP %s: rejected an association from %s called %s",
		           d->scp_aet.c_str(), calling, called);
		T_ASC_RejectParameters rej = { ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
		                               ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED };
		ASC_rejectAssociation(a, &rej);
		end_assoc(a, END_PEER_RELEASED);
		return 0;
	}
	int accepted = 0;
	int n = ASC_countPresentationContexts(p);
	for (int i = 0; i < n; i++) {
		T_ASC_PresentationContext pc;
		memset(&pc, 0, sizeof(pc));
		if (ASC_getPresentationContext(p, i, &pc).bad())
			continue;
		bool storage = dcmIsaStorageSOPClassUID(pc.abstractSyntax, ESSC_All) == OFTrue;
		bool verif = strcmp(pc.abstractSyntax, UID_VerificationSOPClass) == 0;
		if ((storage || verif) && pc.transferSyntaxCount > 0) {
			/* the requestor's first choice: we never decode, any syntax will do */
			const char *ts = pc.proposedTransferSyntaxes[0];
			if (verif) {
				for (int k = 0; k < pc.transferSyntaxCount; k++)
					if (strcmp(pc.proposedTransferSyntaxes[k], UID_LittleEndianImplicitTransferSyntax) == 0)
						ts = pc.proposedTransferSyntaxes[k];
			}
			if (ASC_acceptPresentationContext(p, pc.presentationContextID, ts).good())
				accepted++;
		} else {
			ASC_refusePresentationContext(p, pc.presentationContextID,
			                              ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
		}
	}
	c = ASC_acknowledgeAssociation(a);
	if (c.bad()) {
		diana__log(DIANA_LOG_DEBUG, "dimse", "SCP %s: acknowledging an association failed: %s",
		           d->scp_aet.c_str(), c.text());
		end_assoc(a, END_CLOSE);
		return 0;
	}
	diana__log(DIANA_LOG_DEBUG, "dimse", "SCP %s: association from %s, %d of %d contexts accepted",
	           d->scp_aet.c_str(), calling, accepted, n);
	*out = a;
	return 0;
}

/* One message on a storage sub-association. Returns false when the
   association is gone (released, aborted, failed) and was destroyed. */
static bool serve_sub(Receiver &r, T_ASC_Association *&a)
{
	diana__dimse *d = r.d;
	T_ASC_PresentationContextID pc = 0;
	T_DIMSE_Message msg;
	memset(&msg, 0, sizeof(msg));
	DcmDataset *detail = nullptr;
	OFCondition c = DIMSE_receiveCommand(a, DIMSE_NONBLOCKING, d->dimse_s, &pc, &msg, &detail);
	delete detail;
	if (c == DUL_PEERREQUESTEDRELEASE) {
		ASC_acknowledgeRelease(a);
		end_assoc(a, END_PEER_RELEASED);
		return false;
	}
	if (c.bad()) {
		diana__log(DIANA_LOG_DEBUG, "dimse", "SCP %s: association ended: %s", d->scp_aet.c_str(),
		           c.text());
		end_assoc(a, cond_code(c) == DIANA_EPACS || cond_code(c) == DIANA_ETIMEDOUT ||
		                     cond_code(c) == DIANA_ECONNECT
		                 ? END_CLOSE
		                 : END_ABORT);
		return false;
	}
	switch (msg.CommandField) {
	case DIMSE_C_STORE_RQ: {
		int rc = receive_store(r, a, pc, &msg.msg.CStoreRQ);
		if (rc < 0) {
			end_assoc(a, end_for(rc));
			return false;
		}
		return true;
	}
	case DIMSE_C_ECHO_RQ:
		c = DIMSE_sendEchoResponse(a, pc, &msg.msg.CEchoRQ, STATUS_Success, nullptr);
		if (c.good())
			return true;
		break;
	default:
		diana__log(DIANA_LOG_DEBUG, "dimse", "SCP %s: unexpected command 0x%04x", d->scp_aet.c_str(),
		           (unsigned)msg.CommandField);
		break;
	}
	end_assoc(a, END_ABORT);
	return false;
}

} /* namespace diana_dimse */

using namespace diana_dimse;

/* --- C-FIND -------------------------------------------------------------------- */

#define GUARD_BEGIN try {
#define GUARD_END                                                                   \
	}                                                                               \
	catch (const std::bad_alloc &) { return diana__error_oom(); }                   \
	catch (...) { return diana__error_set(DIANA_ERROR, "unexpected exception in DCMTK"); }

static const char *find_class(int root)
{
	return root == DIANA__DIMSE_PATIENT_ROOT ? UID_FINDPatientRootQueryRetrieveInformationModel
	                                         : UID_FINDStudyRootQueryRetrieveInformationModel;
}

static const char *root_name(int root)
{
	return root == DIANA__DIMSE_PATIENT_ROOT ? "patient root" : "study root";
}

/* Wait for the main association, in slices; handles cancellation and the
   DIMSE timeout. Returns 1 when readable, or an error. */
struct MainWait {
	diana__dimse *d;
	T_ASC_PresentationContextID pc;
	DIC_US msg_id;
	int64_t last;
	bool want_cancel = false; /* stop delivering; C-CANCEL goes out soon */
	bool cancel_sent = false;
	int64_t want_at = 0;
	int cancel_rc = 0;
	std::string cancel_msg;

	MainWait(diana__dimse *dd, T_ASC_PresentationContextID p, DIC_US id)
		: d(dd), pc(p), msg_id(id), last(diana__now_ms()) {}

	/* stop the operation; rc is what it will return */
	void cancel(int rc, const std::string &msg)
	{
		if (want_cancel)
			return;
		want_cancel = true;
		want_at = diana__now_ms();
		cancel_rc = rc;
		cancel_msg = msg;
	}

	/* Send the C-CANCEL, unless answers are already waiting: read those
	   first (for up to 100 ms), the final one may be among them, and a
	   C-CANCEL after the final answer confuses some SCPs (Orthanc 1.10.1
	   logs "cannot handle command: 0xfff" and drops the association). */
	void flush_cancel()
	{
		if (!want_cancel || cancel_sent || !d->assoc)
			return;
		if (diana__now_ms() - want_at < 100 && DUL_dataWaiting(d->assoc->DULassociation, 0))
			return;
		cancel_sent = true;
		OFCondition c = DIMSE_sendCancelRequest(d->assoc, pc, msg_id);
		diana__log(DIANA_LOG_DEBUG, "dimse", "C-CANCEL to %s%s", d->peer.c_str(),
		           c.good() ? "" : " failed");
	}

	void poll_cancel(const char *what)
	{
		if (!want_cancel && d->cancel.load()) {
			char m[128];
			snprintf(m, sizeof(m), "%s cancelled", what);
			diana__error_set(DIANA_ECANCELLED, "%s", m);
			cancel(DIANA_ECANCELLED, m);
		}
		flush_cancel();
	}

	/* error when the peer stayed silent too long */
	int timed_out(const char *what)
	{
		if (diana__now_ms() - last <= d->dimse_ms)
			return 0;
		int rc = diana__error_set(DIANA_ETIMEDOUT, "%s: no answer from %s within %d s", what,
		                          d->peer.c_str(), d->dimse_s);
		drop_assoc(d, END_CLOSE);
		return rc;
	}

	int finish(int rc)
	{
		if (cancel_rc) {
			diana__error_set(cancel_rc, "%s", cancel_msg.c_str());
			return cancel_rc;
		}
		return rc;
	}
};

extern "C" int diana__dimse_find(diana__dimse *d, const diana__dimse_query *q,
                                 diana__dimse_answer_fn fn, void *user_data, size_t *count)
{
	if (count)
		*count = 0;
	if (!d || !q)
		return diana__error_set(DIANA_EINVAL, "NULL argument to C-FIND");
	GUARD_BEGIN
	SigpipeGuard guard;
	if (d->cancel.exchange(0))
		return diana__error_set(DIANA_ECANCELLED, "C-FIND cancelled");
	DcmDataset *idp = nullptr;
	int rc = make_identifier(q, &idp);
	if (rc < 0)
		return rc;
	std::unique_ptr<DcmDataset> id(idp);
	rc = ensure_assoc(d);
	if (rc < 0)
		return rc;
	T_ASC_PresentationContextID pc = ASC_findAcceptedPresentationContextID(d->assoc, find_class(q->root));
	if (!pc)
		return diana__error_set(DIANA_EUNSUPPORTED, "%s does not accept C-FIND (%s)", d->peer.c_str(),
		                        root_name(q->root));

	T_DIMSE_Message req;
	memset(&req, 0, sizeof(req));
	req.CommandField = DIMSE_C_FIND_RQ;
	T_DIMSE_C_FindRQ &fr = req.msg.CFindRQ;
	fr.MessageID = next_id(d);
	OFStandard::strlcpy(fr.AffectedSOPClassUID, find_class(q->root), sizeof(fr.AffectedSOPClassUID));
	fr.Priority = DIMSE_PRIORITY_MEDIUM;
	fr.DataSetType = DIMSE_DATASET_PRESENT;
	int64_t t0 = diana__now_ms();
	OFCondition c = DIMSE_sendMessageUsingMemoryData(d->assoc, pc, &req, nullptr, id.get(), nullptr, nullptr);
	if (c.bad()) {
		rc = cond_error(d, c, "C-FIND request");
		drop_assoc(d, end_for(rc));
		return rc;
	}

	MainWait w(d, pc, fr.MessageID);
	size_t n = 0;
	std::vector<char> ready;
	for (;;) {
		w.poll_cancel("C-FIND");
		T_ASC_Association *list[1] = { d->assoc };
		if (!wait_any(list, 1, -1, k_slice_ms, ready, nullptr)) {
			if ((rc = w.timed_out("C-FIND")) < 0)
				return rc;
			continue;
		}
		w.last = diana__now_ms();
		T_DIMSE_Message rsp;
		memset(&rsp, 0, sizeof(rsp));
		DcmDataset *detail = nullptr;
		T_ASC_PresentationContextID rpc = 0;
		c = DIMSE_receiveCommand(d->assoc, DIMSE_NONBLOCKING, d->dimse_s, &rpc, &rsp, &detail);
		delete detail;
		if (c.bad()) {
			rc = cond_error(d, c, "C-FIND");
			drop_assoc(d, end_for(rc));
			return rc;
		}
		if (rsp.CommandField != DIMSE_C_FIND_RSP ||
		    rsp.msg.CFindRSP.MessageIDBeingRespondedTo != fr.MessageID) {
			drop_assoc(d, END_ABORT);
			return diana__error_set(DIANA_EPACS, "C-FIND: unexpected message 0x%04x from %s",
			                        (unsigned)rsp.CommandField, d->peer.c_str());
		}
		uint16_t status = rsp.msg.CFindRSP.DimseStatus;
		DcmDataset *ans = nullptr;
		if (rsp.msg.CFindRSP.DataSetType != DIMSE_DATASET_NULL) {
			c = DIMSE_receiveDataSetInMemory(d->assoc, DIMSE_NONBLOCKING, d->dimse_s, &rpc, &ans,
			                                 nullptr, nullptr);
			if (c.bad()) {
				rc = cond_error(d, c, "C-FIND");
				drop_assoc(d, end_for(rc));
				return rc;
			}
		}
		std::unique_ptr<DcmDataset> ans_owner(ans);
		if (is_pending(status)) {
			if (ans && !w.want_cancel) {
				diana_dataset *ds = nullptr;
				rc = to_diana(ans, &ds);
				if (rc < 0) {
					w.cancel(rc, diana_error_message());
					continue;
				}
				n++;
				int cb = fn ? fn(ds, user_data) : 0;
				diana_dataset_free(ds);
				if (cb) {
					if (cb > 0)
						diana__error_set(DIANA_EUSER, "C-FIND stopped by the callback");
					w.cancel(cb < 0 ? cb : DIANA_EUSER, diana_error_message());
				}
			}
			continue;
		}
		if (count)
			*count = n;
		diana__log(DIANA_LOG_DEBUG, "dimse", "C-FIND %s (%s): %zu answers, status 0x%04x, %lld ms",
		           d->peer.c_str(), root_name(q->root), n, status, (long long)(diana__now_ms() - t0));
		d->cancel.store(0);
		if (status == STATUS_Success)
			return w.finish(0);
		if (status == STATUS_FIND_Cancel_MatchingTerminatedDueToCancelRequest && w.cancel_rc)
			return w.finish(0);
		return w.finish(diana__error_set(DIANA_EPACS, "C-FIND on %s: status %s", d->peer.c_str(),
		                                 status_text(status, DU_cfindStatusString).c_str()));
	}
	GUARD_END
}

/* --- C-GET and C-MOVE --------------------------------------------------------- */

static int retrieve(diana__dimse *d, const diana__dimse_query *q, const char *dest, bool is_get,
                    diana__dimse_instance_fn fn, void *user_data, diana__dimse_result *res)
{
	const char *op = is_get ? "C-GET" : "C-MOVE";
	bool to_self = !is_get && !dest;
	if (to_self && d->listen_fd < 0)
		return diana__error_set(DIANA_EINVAL, "C-MOVE to ourselves needs the storage SCP (scp_port)");
	if (!to_self && !is_get && (strlen(dest) == 0 || strlen(dest) > 16))
		return diana__error_set(DIANA_EINVAL, "invalid move destination AE title");
	if (d->cancel.exchange(0))
		return diana__error_set(DIANA_ECANCELLED, "%s cancelled", op);

	DcmDataset *idp = nullptr;
	int rc = make_identifier(q, &idp);
	if (rc < 0)
		return rc;
	std::unique_ptr<DcmDataset> id(idp);
	rc = ensure_assoc(d);
	if (rc < 0)
		return rc;
	const char *cls;
	if (is_get)
		cls = q->root == DIANA__DIMSE_PATIENT_ROOT ? UID_GETPatientRootQueryRetrieveInformationModel
		                                           : UID_GETStudyRootQueryRetrieveInformationModel;
	else
		cls = q->root == DIANA__DIMSE_PATIENT_ROOT ? UID_MOVEPatientRootQueryRetrieveInformationModel
		                                           : UID_MOVEStudyRootQueryRetrieveInformationModel;
	T_ASC_PresentationContextID pc = ASC_findAcceptedPresentationContextID(d->assoc, cls);
	if (!pc)
		return diana__error_set(DIANA_EUNSUPPORTED, "%s does not accept %s (%s)", d->peer.c_str(), op,
		                        root_name(q->root));

	T_DIMSE_Message req;
	memset(&req, 0, sizeof(req));
	DIC_US msg_id = next_id(d);
	if (is_get) {
		req.CommandField = DIMSE_C_GET_RQ;
		T_DIMSE_C_GetRQ &g = req.msg.CGetRQ;
		g.MessageID = msg_id;
		OFStandard::strlcpy(g.AffectedSOPClassUID, cls, sizeof(g.AffectedSOPClassUID));
		g.Priority = DIMSE_PRIORITY_MEDIUM;
		g.DataSetType = DIMSE_DATASET_PRESENT;
	} else {
		req.CommandField = DIMSE_C_MOVE_RQ;
		T_DIMSE_C_MoveRQ &m = req.msg.CMoveRQ;
		m.MessageID = msg_id;
		OFStandard::strlcpy(m.AffectedSOPClassUID, cls, sizeof(m.AffectedSOPClassUID));
		m.Priority = DIMSE_PRIORITY_MEDIUM;
		m.DataSetType = DIMSE_DATASET_PRESENT;
		OFStandard::strlcpy(m.MoveDestination, to_self ? d->scp_aet.c_str() : dest,
		                    sizeof(m.MoveDestination));
	}
	std::string dest_aet = is_get ? d->calling : (to_self ? d->scp_aet : std::string(dest));
	int64_t t0 = diana__now_ms();
	OFCondition c = DIMSE_sendMessageUsingMemoryData(d->assoc, pc, &req, nullptr, id.get(), nullptr, nullptr);
	if (c.bad()) {
		rc = cond_error(d, c, is_get ? "C-GET request" : "C-MOVE request");
		drop_assoc(d, end_for(rc));
		return rc;
	}

	Receiver r;
	r.d = d;
	r.fn = fn;
	r.user_data = user_data;
	MainWait w(d, pc, msg_id);
	std::vector<T_ASC_Association *> subs;
	std::vector<char> ready;
	bool final_seen = false;
	uint16_t status = 0;
	diana__dimse_result out;
	memset(&out, 0, sizeof(out));
	int64_t final_at = 0;

	auto cleanup_subs = [&](bool abort) {
		for (auto *&a : subs)
			end_assoc(a, abort ? END_ABORT : END_CLOSE);
		subs.clear();
	};

	for (;;) {
		if (!final_seen) {
			if (r.stop_rc)
				w.cancel(r.stop_rc, r.stop_msg);
			w.poll_cancel(op);
			if (w.want_cancel && !r.stop_rc) {
				r.stop_rc = w.cancel_rc; /* deliver nothing more */
				r.stop_msg = w.cancel_msg;
			}
		} else if (subs.empty()) {
			break;
		}
		std::vector<T_ASC_Association *> list;
		list.push_back(final_seen ? nullptr : d->assoc);
		for (auto *a : subs)
			list.push_back(a);
		bool lr = false;
		int listen = to_self ? d->listen_fd : -1;
		if (!wait_any(list.data(), list.size(), listen, k_slice_ms, ready, &lr)) {
			if (final_seen) {
				/* sub-associations still open after the final answer: give the
				   storage SCU the ACSE timeout to release them */
				if (diana__now_ms() - final_at > (int64_t)d->acse_s * 1000) {
					cleanup_subs(true);
					break;
				}
				continue;
			}
			if ((rc = w.timed_out(op)) < 0) {
				cleanup_subs(true);
				return rc;
			}
			continue;
		}
		w.last = diana__now_ms();
		if (lr) {
			T_ASC_Association *a = nullptr;
			rc = scp_accept(d, &a);
			if (rc < 0) {
				cleanup_subs(true);
				drop_assoc(d, END_ABORT);
				return rc;
			}
			if (a)
				subs.push_back(a);
		}
		for (size_t i = 1; i < list.size(); i++) {
			if (!ready[i])
				continue;
			for (auto it = subs.begin(); it != subs.end(); ++it) {
				if (*it != list[i])
					continue;
				T_ASC_Association *a = *it;
				if (!serve_sub(r, a))
					subs.erase(it);
				break;
			}
		}
		if (final_seen || !ready[0])
			continue;

		/* the main association */
		T_DIMSE_Message rsp;
		memset(&rsp, 0, sizeof(rsp));
		DcmDataset *detail = nullptr;
		T_ASC_PresentationContextID rpc = 0;
		c = DIMSE_receiveCommand(d->assoc, DIMSE_NONBLOCKING, d->dimse_s, &rpc, &rsp, &detail);
		delete detail;
		if (c.bad()) {
			rc = cond_error(d, c, op);
			cleanup_subs(true);
			drop_assoc(d, end_for(rc));
			return rc;
		}
		if (is_get && rsp.CommandField == DIMSE_C_STORE_RQ) {
			if ((rc = receive_store(r, d->assoc, rpc, &rsp.msg.CStoreRQ)) < 0) {
				drop_assoc(d, end_for(rc));
				return rc;
			}
			continue;
		}
		DIC_US responded;
		DIC_US remaining, completed, failed, warning;
		T_DIMSE_DataSetType dst;
		if (is_get && rsp.CommandField == DIMSE_C_GET_RSP) {
			T_DIMSE_C_GetRSP &g = rsp.msg.CGetRSP;
			responded = g.MessageIDBeingRespondedTo;
			status = g.DimseStatus;
			dst = g.DataSetType;
			remaining = g.NumberOfRemainingSubOperations;
			completed = g.NumberOfCompletedSubOperations;
			failed = g.NumberOfFailedSubOperations;
			warning = g.NumberOfWarningSubOperations;
			(void)remaining;
			if (g.opts & O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS)
				out.completed = completed;
			if (g.opts & O_GET_NUMBEROFFAILEDSUBOPERATIONS)
				out.failed = failed;
			if (g.opts & O_GET_NUMBEROFWARNINGSUBOPERATIONS)
				out.warning = warning;
		} else if (!is_get && rsp.CommandField == DIMSE_C_MOVE_RSP) {
			T_DIMSE_C_MoveRSP &m = rsp.msg.CMoveRSP;
			responded = m.MessageIDBeingRespondedTo;
			status = m.DimseStatus;
			dst = m.DataSetType;
			if (m.opts & O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS)
				out.completed = m.NumberOfCompletedSubOperations;
			if (m.opts & O_MOVE_NUMBEROFFAILEDSUBOPERATIONS)
				out.failed = m.NumberOfFailedSubOperations;
			if (m.opts & O_MOVE_NUMBEROFWARNINGSUBOPERATIONS)
				out.warning = m.NumberOfWarningSubOperations;
		} else {
			cleanup_subs(true);
			drop_assoc(d, END_ABORT);
			return diana__error_set(DIANA_EPACS, "%s: unexpected message 0x%04x from %s", op,
			                        (unsigned)rsp.CommandField, d->peer.c_str());
		}
		if (responded != msg_id) {
			cleanup_subs(true);
			drop_assoc(d, END_ABORT);
			return diana__error_set(DIANA_EPACS, "%s: answer to message %u, expected %u, from %s", op,
			                        (unsigned)responded, (unsigned)msg_id, d->peer.c_str());
		}
		if (dst != DIMSE_DATASET_NULL) {
			/* the failed SOP Instance UID list: dropped (UIDs stay out of messages) */
			DcmDataset *ids = nullptr;
			c = DIMSE_receiveDataSetInMemory(d->assoc, DIMSE_NONBLOCKING, d->dimse_s, &rpc, &ids,
			                                 nullptr, nullptr);
			delete ids;
			if (c.bad()) {
				rc = cond_error(d, c, op);
				cleanup_subs(true);
				drop_assoc(d, end_for(rc));
				return rc;
			}
		}
		if (!is_pending(status)) {
			final_seen = true;
			final_at = diana__now_ms();
		}
	}

	out.received = r.received;
	out.status = status;
	if (res)
		*res = out;
	d->cancel.store(0);
	int64_t dt = diana__now_ms() - t0;
	diana__log(DIANA_LOG_DEBUG, "dimse",
	           "%s %s -> %s: status 0x%04x, %u completed, %u failed, %u warning, %u received, %lld ms",
	           op, d->peer.c_str(), dest_aet.c_str(), status, out.completed, out.failed, out.warning,
	           out.received, (long long)dt);
	if (r.io_failed && r.stop_rc) {
		diana__error_set(r.stop_rc, "%s", r.stop_msg.empty() ? "cannot store a received instance"
		                                                      : r.stop_msg.c_str());
		return r.stop_rc;
	}
	if (w.cancel_rc)
		return w.finish(0);
	const char *(*describe)(Uint16) = is_get ? DU_cgetStatusString : DU_cmoveStatusString;
	if (status == STATUS_Success)
		return 0;
	if ((status & 0xF000) == 0xB000)
		return diana__error_set(DIANA_EPACS, "%s from %s to %s: %u of %u sub-operations failed (status %s)",
		                        op, d->peer.c_str(), dest_aet.c_str(), out.failed,
		                        out.failed + out.completed + out.warning,
		                        status_text(status, describe).c_str());
	return diana__error_set(DIANA_EPACS, "%s from %s to %s: status %s", op, d->peer.c_str(),
	                        dest_aet.c_str(), status_text(status, describe).c_str());
}

extern "C" int diana__dimse_get(diana__dimse *d, const diana__dimse_query *q,
                                diana__dimse_instance_fn fn, void *user_data,
                                diana__dimse_result *res)
{
	if (res)
		memset(res, 0, sizeof(*res));
	if (!d || !q)
		return diana__error_set(DIANA_EINVAL, "NULL argument to C-GET");
	GUARD_BEGIN
	SigpipeGuard guard;
	return retrieve(d, q, nullptr, true, fn, user_data, res);
	GUARD_END
}

extern "C" int diana__dimse_move(diana__dimse *d, const diana__dimse_query *q,
                                 const char *destination_aet, diana__dimse_instance_fn fn,
                                 void *user_data, diana__dimse_result *res)
{
	if (res)
		memset(res, 0, sizeof(*res));
	if (!d || !q)
		return diana__error_set(DIANA_EINVAL, "NULL argument to C-MOVE");
	GUARD_BEGIN
	SigpipeGuard guard;
	return retrieve(d, q, destination_aet, false, fn, user_data, res);
	GUARD_END
}
