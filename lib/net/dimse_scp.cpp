/*
 * libdiana - a standalone storage SCP (C-STORE, C-ECHO) over DCMTK dcmnet:
 * a listener thread, one thread per association, each instance written as
 * received and renamed into dir/<StudyInstanceUID>/<SOPInstanceUID>.dcm
 * before the C-STORE response. See dimse.h (end section) and
 * doc/pipeline-scp.md. Shares the transport (TCP_NODELAY), SIGPIPE and
 * log set-up of dimse.cpp.
 * SPDX-License-Identifier: MIT
 */
#include "dimse_priv.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dul.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <list>
#include <mutex>
#include <new>
#include <string>
#include <vector>

using namespace diana_dimse;

namespace {

/* dcmExternalSocketHandle is process-wide: accepts take diana_dimse::g_accept_lock,
   shared with the C-MOVE SCP of dimse_qr.cpp. */

const int k_slice_ms = 200;

struct Worker {
	pthread_t thread;
	diana__storescp *scp = nullptr;
	int fd = -1;                 /* the connection, until the association is set up */
	T_ASC_Association *assoc = nullptr;
	int sock = -1;               /* its socket (for shutdown() on stop) */
	std::string last_study;      /* study of the last instance stored */
	bool receiving = false;      /* a C-STORE is being received */
	bool serving = false;        /* counts against max_associations */
	std::atomic<bool> done{false};
};

} /* namespace */

struct diana__storescp {
	std::string bind, aet, dir, partial;
	std::vector<std::string> callers;
	bool any_caller = true;
	int port = 0;
	int max_assoc = 4;
	int acse_s = 30, dimse_s = 60;
	uint32_t max_pdu = 65536;

	int listen_fd = -1;
	int wake[2] = { -1, -1 };
	T_ASC_Network *net = nullptr;
	pthread_t thread;
	bool thread_started = false;
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> received{0};

	std::mutex lock; /* workers, and each worker's sock/last_study/receiving */
	std::list<Worker *> workers;
};

namespace {

bool uid_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.') || (s[i] == '.' && s[i + 1] == '.'))
			return false;
	return true;
}

/* Transfer syntaxes we accept (we never decode: any of these is stored as is). */
const char *const k_syntaxes[] = {
	UID_LittleEndianImplicitTransferSyntax, UID_LittleEndianExplicitTransferSyntax,
	UID_BigEndianExplicitTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
	UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax,
	UID_JPEGProcess14TransferSyntax, UID_JPEGProcess14SV1TransferSyntax,
	UID_JPEGLSLosslessTransferSyntax, UID_JPEGLSLossyTransferSyntax,
	UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax,
	UID_RLELosslessTransferSyntax,
	"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", /* HTJ2K */
};

bool syntax_ok(const char *ts)
{
	for (const char *k : k_syntaxes)
		if (strcmp(ts, k) == 0)
			return true;
	return false;
}

std::string trimmed(const char *s)
{
	std::string t = s ? s : "";
	while (!t.empty() && t.back() == ' ')
		t.pop_back();
	size_t i = 0;
	while (i < t.size() && t[i] == ' ')
		i++;
	return t.substr(i);
}

/* Block every asynchronous signal in the threads we start: the host's
   handlers (SIGINT, SIGTERM...) run on its own threads. */
int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(t, nullptr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	return e;
}

int conn_fd(T_ASC_Association *a)
{
	NodelayConnection *c = dynamic_cast<NodelayConnection *>(DUL_getTransportConnection(a->DULassociation));
	return c ? (int)c->fd() : -1;
}

/* End the worker's association; its socket is forgotten first (free() shuts it down). */
void finish(diana__storescp *s, Worker *w, T_ASC_Association *&a, End how)
{
	{
		std::lock_guard<std::mutex> l(s->lock);
		w->sock = -1;
		w->assoc = nullptr;
		w->receiving = false;
	}
	end_assoc(a, how);
}

/* --- one association ------------------------------------------------------------ */

/* Negotiate on the accepted connection. Returns the association or NULL
   (rejected, failed: everything closed). */
T_ASC_Association *negotiate(diana__storescp *s, Worker *w, bool over_limit)
{
	T_ASC_Association *a = nullptr;
	OFCondition c;
	/* wait for the A-ASSOCIATE-RQ without the lock: a silent peer holds
	   only its own thread (until the ACSE timeout), not everyone's accepts */
	int64_t until = diana__now_ms() + (int64_t)s->acse_s * 1000;
	for (;;) {
		struct pollfd pf = { w->fd, POLLIN, 0 };
		int r = poll(&pf, 1, k_slice_ms);
		if (r > 0)
			break;
		if ((r < 0 && errno != EINTR) || s->stop.load() || diana__now_ms() >= until) {
			diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: a connection sent no association request",
			           s->aet.c_str());
			return nullptr; /* worker_main closes the connection */
		}
	}
	{
		std::lock_guard<std::mutex> g(g_accept_lock);
		dcmExternalSocketHandle.set(w->fd);
		c = ASC_receiveAssociation(s->net, &a, (long)s->max_pdu, nullptr, nullptr, OFFalse, DUL_NOBLOCK,
		                           s->acse_s);
		dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
	}
	w->fd = -1; /* DCMTK's now (closed by ASC_dropAssociation) */
	if (c.bad()) {
		diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: incoming association failed: %s", s->aet.c_str(),
		           c.text());
		if (a)
			end_assoc(a, END_CLOSE);
		return nullptr;
	}
	T_ASC_Parameters *p = a->params;
	std::string called = trimmed(p->DULparams.calledAPTitle);
	std::string calling = trimmed(p->DULparams.callingAPTitle);
	T_ASC_RejectParameters rej = { ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
		                           ASC_REASON_SU_NOREASON };
	const char *why = nullptr;
	if (called != s->aet) {
		rej.reason = ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED;
		why = "called AE title not recognized";
	} else if (!s->any_caller) {
		bool ok = false;
		for (const std::string &k : s->callers)
			ok = ok || k == calling;
		if (!ok) {
			rej.reason = ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED;
			why = "calling AE title not allowed";
		}
	}
	if (!why && over_limit) {
		rej.result = ASC_RESULT_REJECTEDTRANSIENT;
		rej.source = ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED;
		rej.reason = ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED;
		why = "too many associations";
	}
	if (why) {
		diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP %s: association from %s rejected: %s",
		           s->aet.c_str(), calling.c_str(), why);
		ASC_rejectAssociation(a, &rej);
		end_assoc(a, END_PEER_RELEASED);
		return nullptr;
	}
	int accepted = 0, n = ASC_countPresentationContexts(p);
	for (int i = 0; i < n; i++) {
		T_ASC_PresentationContext pc;
		memset(&pc, 0, sizeof(pc));
		if (ASC_getPresentationContext(p, i, &pc).bad())
			continue;
		bool verif = strcmp(pc.abstractSyntax, UID_VerificationSOPClass) == 0;
		bool storage = dcmIsaStorageSOPClassUID(pc.abstractSyntax, ESSC_All) == OFTrue;
		const char *ts = nullptr;
		for (int k = 0; (verif || storage) && k < pc.transferSyntaxCount && !ts; k++)
			if (syntax_ok(pc.proposedTransferSyntaxes[k]))
				ts = pc.proposedTransferSyntaxes[k];
		if (ts && ASC_acceptPresentationContext(p, pc.presentationContextID, ts).good()) {
			accepted++;
		} else {
			ASC_refusePresentationContext(p, pc.presentationContextID,
			                              (verif || storage) ? ASC_P_TRANSFERSYNTAXESNOTSUPPORTED
			                                                 : ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
		}
	}
	c = ASC_acknowledgeAssociation(a);
	if (c.bad()) {
		diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: acknowledging an association failed: %s",
		           s->aet.c_str(), c.text());
		end_assoc(a, END_CLOSE);
		return nullptr;
	}
	diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: association from %s, %d of %d contexts accepted",
	           s->aet.c_str(), calling.c_str(), accepted, n);
	return a;
}

/* Read the Study Instance UID of a received file (the header only). */
bool study_of(const std::string &path, std::string &study)
{
	DcmFileFormat ff;
	OFCondition c = ff.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect,
	                                    DCM_SeriesInstanceUID);
	if (c.bad())
		return false;
	OFString v;
	if (ff.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, v).bad())
		return false;
	study = trimmed(v.c_str());
	return true;
}

int sync_file(const std::string &path)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

/* One C-STORE: the dataset into .partial/, then into place, then the answer.
   Returns false when the association failed (and was ended). */
bool receive_one(diana__storescp *s, Worker *w, T_ASC_Association *&a, T_ASC_PresentationContextID pc,
                 T_DIMSE_C_StoreRQ *rq)
{
	Uint16 status = STATUS_Success;
	std::string path, study;
	bool have_file = false, consumed = false;
	const char *sop = rq->AffectedSOPInstanceUID;

	{
		std::lock_guard<std::mutex> g(s->lock);
		w->receiving = true;
	}
	if (!uid_ok(sop)) {
		status = STATUS_STORE_Error_CannotUnderstand;
		diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP %s: an instance with an invalid SOP Instance UID refused",
		           s->aet.c_str());
	} else {
		path = s->partial + "/rx-XXXXXX";
		int fd = mkstemp(&path[0]);
		if (fd < 0) {
			status = STATUS_STORE_Refused_OutOfResources;
			diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP %s: cannot create a file in %s: %s",
			           s->aet.c_str(), s->partial.c_str(), strerror(errno));
			path.clear();
		} else {
			close(fd);
			DcmOutputFileStream *fs = nullptr;
			OFCondition c = DIMSE_createFilestream(path.c_str(), rq, a, pc, OFTrue, &fs);
			if (c.bad() || !fs) {
				unlink(path.c_str());
				path.clear();
				status = STATUS_STORE_Refused_OutOfResources;
			} else {
				c = DIMSE_receiveDataSetInFile(a, DIMSE_NONBLOCKING, s->dimse_s, &pc, fs, nullptr, nullptr);
				consumed = true;
				OFCondition ws = fs->status();
				delete fs;
				if (c.bad()) {
					unlink(path.c_str());
					diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: receiving an instance failed: %s",
					           s->aet.c_str(), c.text());
					finish(s, w, a, end_for(cond_code(c)));
					return false;
				}
				if (ws.bad()) {
					unlink(path.c_str());
					path.clear();
					status = STATUS_STORE_Refused_OutOfResources;
					diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP %s: cannot write in %s: %s",
					           s->aet.c_str(), s->partial.c_str(), ws.text());
				} else {
					have_file = true;
				}
			}
		}
	}
	if (!consumed) {
		/* nothing read yet (bad UID, no file): read and drop the dataset */
		DIC_UL bytes = 0, pdvs = 0;
		OFCondition c = DIMSE_ignoreDataSet(a, DIMSE_NONBLOCKING, s->dimse_s, &bytes, &pdvs);
		if (c.bad()) {
			finish(s, w, a, end_for(cond_code(c)));
			return false;
		}
	}
	if (have_file) {
		if (!study_of(path, study) || !uid_ok(study.c_str())) {
			status = STATUS_STORE_Error_CannotUnderstand;
			diana__log(DIANA_LOG_WARNING, "dimse",
			           "storage SCP %s: an instance without a valid Study Instance UID refused", s->aet.c_str());
		} else if (sync_file(path) != 0) {
			status = STATUS_STORE_Refused_OutOfResources;
			diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP %s: cannot sync a received file: %s",
			           s->aet.c_str(), strerror(errno));
		} else {
			std::string sdir = s->dir + "/" + study;
			std::string dest = sdir + "/" + sop + ".dcm";
			int tries = 0, err = 0;
			bool created = false;
			/* the pipeline may move the study folder away at any moment: again */
			for (;;) {
				if (mkdir(sdir.c_str(), 0700) == 0)
					created = true;
				else if (errno != EEXIST) {
					err = errno;
					break;
				}
				if (rename(path.c_str(), dest.c_str()) == 0) {
					err = 0;
					break;
				}
				err = errno;
				if (err != ENOENT || ++tries >= 5)
					break;
			}
			/* the answer says "stored": the new name (and a new study
			 * folder's) must survive a power loss too, not only the bytes.
			 * A folder the pipeline took away meanwhile took the file with
			 * it (ENOENT): the pipeline has it, nothing to flush here. */
			if (!err && (sync_file(sdir) != 0 && errno != ENOENT))
				err = errno;
			if (!err && created && sync_file(s->dir) != 0)
				err = errno;
			if (err) {
				status = STATUS_STORE_Refused_OutOfResources;
				diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP %s: cannot store a received file in %s: %s",
				           s->aet.c_str(), s->dir.c_str(), strerror(err));
			} else {
				have_file = false; /* in place */
				s->received.fetch_add(1);
				std::lock_guard<std::mutex> g(s->lock);
				w->last_study = study;
			}
		}
		if (have_file)
			unlink(path.c_str());
	}

	T_DIMSE_C_StoreRSP rsp;
	memset(&rsp, 0, sizeof(rsp));
	rsp.MessageIDBeingRespondedTo = rq->MessageID;
	rsp.DimseStatus = status;
	rsp.DataSetType = DIMSE_DATASET_NULL;
	OFStandard::strlcpy(rsp.AffectedSOPClassUID, rq->AffectedSOPClassUID, sizeof(rsp.AffectedSOPClassUID));
	OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, rq->AffectedSOPInstanceUID, sizeof(rsp.AffectedSOPInstanceUID));
	rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
	OFCondition c = DIMSE_sendStoreResponse(a, pc, rq, &rsp, nullptr);
	{
		std::lock_guard<std::mutex> g(s->lock);
		w->receiving = false;
	}
	if (c.bad()) {
		finish(s, w, a, end_for(cond_code(c)));
		return false;
	}
	return true;
}

void serve(diana__storescp *s, Worker *w, T_ASC_Association *&a)
{
	int64_t idle_since = diana__now_ms();
	std::vector<char> ready;
	while (a) {
		if (s->stop.load()) {
			finish(s, w, a, END_ABORT);
			return;
		}
		if (!wait_any(&a, 1, -1, k_slice_ms, ready, nullptr)) {
			if (diana__now_ms() - idle_since > (int64_t)s->dimse_s * 1000) {
				diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: idle association closed", s->aet.c_str());
				finish(s, w, a, END_ABORT);
			}
			continue;
		}
		T_ASC_PresentationContextID pc = 0;
		T_DIMSE_Message msg;
		memset(&msg, 0, sizeof(msg));
		DcmDataset *detail = nullptr;
		OFCondition c = DIMSE_receiveCommand(a, DIMSE_NONBLOCKING, s->dimse_s, &pc, &msg, &detail);
		delete detail;
		if (c == DUL_PEERREQUESTEDRELEASE) {
			ASC_acknowledgeRelease(a);
			finish(s, w, a, END_PEER_RELEASED);
			return;
		}
		if (c.bad()) {
			diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: association ended: %s", s->aet.c_str(), c.text());
			int code = cond_code(c);
			finish(s, w, a, code == DIANA_EPACS || code == DIANA_ETIMEDOUT || code == DIANA_ECONNECT ? END_CLOSE
			                                                                                   : END_ABORT);
			return;
		}
		switch (msg.CommandField) {
		case DIMSE_C_STORE_RQ:
			if (!receive_one(s, w, a, pc, &msg.msg.CStoreRQ))
				return;
			break;
		case DIMSE_C_ECHO_RQ:
			c = DIMSE_sendEchoResponse(a, pc, &msg.msg.CEchoRQ, STATUS_Success, nullptr);
			if (c.bad()) {
				finish(s, w, a, END_CLOSE);
				return;
			}
			break;
		default:
			diana__log(DIANA_LOG_DEBUG, "dimse", "storage SCP %s: unexpected command 0x%04x", s->aet.c_str(),
			           (unsigned)msg.CommandField);
			finish(s, w, a, END_ABORT);
			return;
		}
		idle_since = diana__now_ms();
	}
}

struct WorkerArg {
	Worker *w;
	bool over_limit;
};

void *worker_main(void *arg)
{
	WorkerArg *wa = static_cast<WorkerArg *>(arg);
	Worker *w = wa->w;
	bool over = wa->over_limit;
	delete wa;
	diana__storescp *s = w->scp;
	try {
		SigpipeGuard g;
		T_ASC_Association *a = negotiate(s, w, over);
		if (a) {
			{
				std::lock_guard<std::mutex> l(s->lock);
				w->assoc = a;
				w->sock = conn_fd(a);
			}
			if (s->stop.load())
				finish(s, w, a, END_ABORT);
			else
				serve(s, w, a);
			if (a)
				finish(s, w, a, END_ABORT);
		}
	} catch (...) {
		diana__log(DIANA_LOG_WARNING, "dimse", "storage SCP: unexpected exception in DCMTK");
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	{
		std::lock_guard<std::mutex> l(s->lock);
		w->serving = false;
	}
	w->done.store(true);
	return nullptr;
}

/* Join finished workers; returns how many are still running. */
int reap(diana__storescp *s)
{
	std::vector<Worker *> finished;
	int running = 0;
	{
		std::lock_guard<std::mutex> l(s->lock);
		for (auto it = s->workers.begin(); it != s->workers.end();) {
			if ((*it)->done.load()) {
				finished.push_back(*it);
				it = s->workers.erase(it);
			} else {
				running++;
				++it;
			}
		}
	}
	for (Worker *w : finished) {
		pthread_join(w->thread, nullptr);
		delete w;
	}
	return running;
}

void *listener_main(void *arg)
{
	diana__storescp *s = static_cast<diana__storescp *>(arg);
	SigpipeGuard g;
	while (!s->stop.load()) {
		struct pollfd p[2] = { { s->listen_fd, POLLIN, 0 }, { s->wake[0], POLLIN, 0 } };
		int r = poll(p, 2, 1000);
		int running = reap(s);
		if (r <= 0 || s->stop.load() || !(p[0].revents & POLLIN))
			continue;
		int fd = accept4(s->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (fd == 0) { /* DCMTK takes only external sockets > 0 */
			int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 3);
			close(fd);
			if (fd2 < 0)
				continue;
			fd = fd2;
		}
		if (running >= 2 * s->max_assoc) { /* not even a rejecting thread */
			close(fd);
			continue;
		}
		Worker *w = new (std::nothrow) Worker();
		WorkerArg *wa = new (std::nothrow) WorkerArg();
		if (!w || !wa) {
			delete w;
			delete wa;
			close(fd);
			continue;
		}
		w->scp = s;
		w->fd = fd;
		wa->w = w;
		{
			/* count the associations being served, not the rejecting threads */
			std::lock_guard<std::mutex> l(s->lock);
			int serving = 0;
			for (Worker *o : s->workers)
				if (o->serving)
					serving++;
			wa->over_limit = serving >= s->max_assoc;
			w->serving = !wa->over_limit;
			if (start_thread(&w->thread, worker_main, wa) != 0) {
				close(fd);
				delete w;
				delete wa;
				continue;
			}
			s->workers.push_back(w);
		}
	}
	return nullptr;
}

int listen_on(diana__storescp *s)
{
	int fd = -1;
	int rc = listen_socket(s->bind, s->port, 64, "storage SCP", &fd);
	if (rc < 0)
		return rc;
	s->listen_fd = fd;
	return 0;
}

/* mkdir -p (0700 for what we create) */
int mkdir_one(const std::string &d)
{
	for (size_t i = 1; i < d.size(); i++)
		if (d[i] == '/' && d[i - 1] != '/')
			mkdir(d.substr(0, i).c_str(), 0700);
	if (mkdir(d.c_str(), 0700) == 0 || errno == EEXIST) {
		struct stat st;
		if (stat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		return diana__error_set(DIANA_EIO, "storage SCP folder %s: not a directory", d.c_str());
	}
	return diana__error_errno(errno, "storage SCP folder");
}

void clear_partial(const std::string &d)
{
	DIR *dd = opendir(d.c_str());
	if (!dd)
		return;
	struct dirent *e;
	while ((e = readdir(dd)) != nullptr)
		if (strncmp(e->d_name, "rx-", 3) == 0)
			unlinkat(dirfd(dd), e->d_name, 0);
	closedir(dd);
}

} /* namespace */

/* --- entry points ----------------------------------------------------------------- */

static void scp_destroy(diana__storescp *s)
{
	if (s->thread_started) {
		s->stop.store(true);
		if (s->wake[1] >= 0) {
			char b = 1;
			ssize_t r = write(s->wake[1], &b, 1);
			(void)r;
		}
		pthread_join(s->thread, nullptr);
		s->thread_started = false;
	}
	/* wake the workers blocked in a receive; they abort and finish */
	{
		std::lock_guard<std::mutex> l(s->lock);
		for (Worker *w : s->workers)
			if (w->sock >= 0)
				shutdown(w->sock, SHUT_RDWR);
	}
	for (Worker *w : s->workers) {
		pthread_join(w->thread, nullptr);
		delete w;
	}
	s->workers.clear();
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	for (int &f : s->wake)
		if (f >= 0) {
			close(f);
			f = -1;
		}
	if (s->net) {
		std::lock_guard<std::mutex> g(g_accept_lock);
		ASC_dropNetwork(&s->net);
	}
	delete s;
}

extern "C" int diana__storescp_new(diana__storescp **out, const diana__storescp_options *o)
{
	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = nullptr;
	if (!o || !o->dir || !*o->dir)
		return diana__error_set(DIANA_EINVAL, "a storage SCP needs a folder");
	if (o->port != DIANA__DIMSE_ANY_PORT && (o->port < 1 || o->port > 65535))
		return diana__error_set(DIANA_EINVAL, "invalid storage SCP port %d", o->port);
	if (o->aet && !aet_ok(o->aet))
		return diana__error_set(DIANA_EINVAL, "invalid storage SCP AE title (1 to 16 printable characters)");
	if (o->max_associations < 0 || o->max_associations > 256)
		return diana__error_set(DIANA_EINVAL, "max associations %d outside 1..256", o->max_associations);
	if (o->max_pdu && (o->max_pdu < ASC_MINIMUMPDUSIZE || o->max_pdu > ASC_MAXIMUMPDUSIZE))
		return diana__error_set(DIANA_EINVAL, "max PDU %u outside %d..%d", o->max_pdu, ASC_MINIMUMPDUSIZE,
		                        ASC_MAXIMUMPDUSIZE);
	for (const char *const *c = o->calling_aets; c && *c; c++)
		if (!aet_ok(*c))
			return diana__error_set(DIANA_EINVAL, "invalid calling AE title in the allow-list");
	int rc = global_init();
	if (rc < 0)
		return rc;

	diana__storescp *s = nullptr;
	try {
		s = new diana__storescp();
		s->bind = o->bind && *o->bind ? o->bind : "127.0.0.1";
		s->port = o->port == DIANA__DIMSE_ANY_PORT ? 0 : o->port;
		s->aet = trimmed(o->aet ? o->aet : "DIANA");
		s->dir = o->dir;
		while (s->dir.size() > 1 && s->dir.back() == '/')
			s->dir.pop_back();
		s->partial = s->dir + "/.partial";
		if (o->calling_aets) {
			s->any_caller = false;
			for (const char *const *c = o->calling_aets; *c; c++)
				s->callers.push_back(trimmed(*c));
		}
		s->max_assoc = o->max_associations ? o->max_associations : 4;
		s->acse_s = ms_to_s(o->acse_timeout_ms, 30000);
		s->dimse_s = ms_to_s(o->dimse_timeout_ms, 60000);
		s->max_pdu = o->max_pdu ? o->max_pdu : 65536;
	} catch (...) {
		delete s;
		return diana__error_oom();
	}
	if ((rc = mkdir_one(s->dir)) < 0 || (rc = mkdir_one(s->partial)) < 0) {
		delete s;
		return rc;
	}
	clear_partial(s->partial);
	if ((rc = listen_on(s)) < 0) {
		delete s;
		return rc;
	}
	if (pipe2(s->wake, O_CLOEXEC) != 0) {
		rc = diana__error_errno(errno, "storage SCP pipe");
		scp_destroy(s);
		return rc;
	}
	{
		SigpipeGuard g;
		std::lock_guard<std::mutex> l(g_accept_lock);
		/* with an external socket set, an acceptor network binds nothing of its own
		   (DCMTK would listen on 0.0.0.0) */
		dcmExternalSocketHandle.set(s->listen_fd);
		OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, 0, s->acse_s, &s->net);
		if (c.good()) {
			NodelayLayer *layer = new (std::nothrow) NodelayLayer(s->dimse_s);
			c = layer ? ASC_setTransportLayer(s->net, layer, 1) : EC_MemoryExhausted;
		}
		dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
		if (c.bad()) {
			rc = diana__error_set(DIANA_ERROR, "storage SCP network initialisation failed: %s", c.text());
			if (s->net)
				ASC_dropNetwork(&s->net);
		}
	}
	if (rc < 0) {
		scp_destroy(s);
		return rc;
	}
	if (start_thread(&s->thread, listener_main, s) != 0) {
		scp_destroy(s);
		return diana__error_set(DIANA_ENOMEM, "cannot start the storage SCP thread");
	}
	s->thread_started = true;
	diana__log(DIANA_LOG_INFO, "dimse", "storage SCP %s listening on %s port %d", s->aet.c_str(), s->bind.c_str(),
	           s->port);
	*out = s;
	return 0;
}

extern "C" int diana__storescp_port(const diana__storescp *s)
{
	return s ? s->port : 0;
}

extern "C" int diana__storescp_active(diana__storescp *s, const char *study_uid)
{
	if (!s || !study_uid)
		return 0;
	std::lock_guard<std::mutex> l(s->lock);
	for (Worker *w : s->workers)
		if (w->assoc && w->receiving && w->last_study == study_uid)
			return 1;
	return 0;
}

extern "C" uint64_t diana__storescp_received(diana__storescp *s)
{
	return s ? s->received.load() : 0;
}

extern "C" void diana__storescp_free(diana__storescp *s)
{
	if (!s)
		return;
	try {
		scp_destroy(s);
	} catch (...) {
	}
}
