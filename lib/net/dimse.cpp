/*
 * libdiana - DIMSE client over DCMTK dcmnet: global set-up, the handle,
 * the query/retrieve association, errors, dataset conversion, C-ECHO.
 * See dimse.h for the contract and doc/dimse.md for the choices.
 * SPDX-License-Identifier: MIT
 */
#include "dimse_priv.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/oflog/logger.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/oflog/spi/logevent.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <mutex>
#include <new>

namespace diana_dimse {

/* --- DCMTK's log into the diana log ------------------------------------- */

/* Only warnings and errors get here (the "dcmtk" logger is set to WARN):
   DCMTK's debug level dumps whole datasets, i.e. PHI. */
class LogAppender : public dcmtk::log4cplus::Appender {
public:
	LogAppender() {}
	~LogAppender() override { destructorImpl(); }
	void close() override { closed = true; }

protected:
	void append(const dcmtk::log4cplus::spi::InternalLoggingEvent &ev) override
	{
		if (!diana__log_enabled(DIANA_LOG_DEBUG))
			return;
		const char *lvl = ev.getLogLevel() >= dcmtk::log4cplus::ERROR_LOG_LEVEL ? "error" : "warning";
		diana__log(DIANA_LOG_DEBUG, "dcmtk", "%s (%s): %s", lvl, ev.getLoggerName().c_str(),
		           ev.getMessage().c_str());
	}
};

/* --- TCP_NODELAY on every connection ------------------------------------- */

/* DCMTK 3.6.7 disables Nagle only when TCP_NODELAY=1 is in the environment
   (read at each connect/accept); this transport layer does it for every
   socket it wraps, requestor and acceptor alike. */
DcmTransportConnection *NodelayLayer::createConnection(DcmNativeSocketType sock, OFBool secure)
{
	if (secure)
		return nullptr; /* TLS is not offered (yet) */
	int one = 1;
	if (setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		diana__log(DIANA_LOG_WARNING, "dimse", "cannot set TCP_NODELAY: %s", strerror(errno));
	NodelayConnection *c = new (std::nothrow) NodelayConnection(sock);
	/* after the constructor, which sets DCMTK's global socket timeouts */
	struct timeval tv = { io_timeout_s_, 0 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return c;
}

/* --- one-time set-up ------------------------------------------------------ */

static std::once_flag g_once;
static int g_init_rc;
static char g_init_msg[256];

static void do_global_init()
{
	try {
		/* route the "dcmtk" logger hierarchy (dcmtk.dcmnet, dcmtk.dcmdata, ...)
		   to us, and nothing of it to the root logger's stderr appender */
		dcmtk::log4cplus::Logger l = OFLog::getLogger("dcmtk");
		l.removeAllAppenders();
		l.setAdditivity(false);
		l.addAppender(dcmtk::log4cplus::SharedAppenderPtr(new LogAppender()));
		l.setLogLevel(dcmtk::log4cplus::WARN_LOG_LEVEL);

		if (!dcmDataDict.isDictionaryLoaded()) {
			g_init_rc = DIANA_ERROR;
			snprintf(g_init_msg, sizeof(g_init_msg),
			         "DCMTK has no DICOM dictionary (install it or set DCMDICTPATH)");
			return;
		}
		/* no reverse DNS lookup of every peer that connects to the SCP */
		dcmDisableGethostbyaddr.set(OFTrue);

		/* DCMTK sets SIGPIPE to SIG_IGN, process-wide, on its first network
		   initialisation: let it happen now and give the host its disposition
		   back; our calls block SIGPIPE instead (SigpipeGuard). */
		struct sigaction old;
		sigaction(SIGPIPE, nullptr, &old);
		T_ASC_Network *n = nullptr;
		OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, 1, &n);
		if (n)
			ASC_dropNetwork(&n);
		sigaction(SIGPIPE, &old, nullptr);
		if (c.bad()) {
			g_init_rc = DIANA_ERROR;
			snprintf(g_init_msg, sizeof(g_init_msg), "DCMTK network initialisation failed: %s",
			         c.text());
		}
	} catch (...) {
		g_init_rc = DIANA_ENOMEM;
		snprintf(g_init_msg, sizeof(g_init_msg), "DCMTK initialisation failed");
	}
}

int global_init()
{
	std::call_once(g_once, do_global_init);
	if (g_init_rc < 0)
		return diana__error_set(g_init_rc, "%s", g_init_msg);
	return 0;
}

SigpipeGuard::SigpipeGuard()
{
	sigset_t s, pending;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, &old_);
	sigpending(&pending);
	was_pending_ = sigismember(&pending, SIGPIPE) == 1;
}

SigpipeGuard::~SigpipeGuard()
{
	if (!was_pending_) {
		sigset_t s, pending;
		sigemptyset(&s);
		sigaddset(&s, SIGPIPE);
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE) == 1) {
			struct timespec zero = { 0, 0 };
			while (sigtimedwait(&s, nullptr, &zero) < 0 && errno == EINTR) {
			}
		}
	}
	pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

/* --- errors --------------------------------------------------------------- */

int cond_code(const OFCondition &c)
{
	if (c.good())
		return 0;
	if (c == DIMSE_NODATAAVAILABLE || c == DUL_READTIMEOUT)
		return DIANA_ETIMEDOUT;
	if (c == DUL_ASSOCIATIONREJECTED)
		return DIANA_EAUTH;
	if (c == DUL_PEERABORTEDASSOCIATION || c == DUL_PEERREQUESTEDRELEASE)
		return DIANA_EPACS;
	if (c.module() == OFM_dcmnet &&
	    (c.code() == DULC_TCPINITERROR || c.code() == DULC_TCPIOERROR ||
	     c.code() == DULC_UNKNOWNHOST || c.code() == DULC_NETWORKCLOSED))
		return DIANA_ECONNECT;
	/* the peer does not speak the upper layer protocol */
	if (c.module() == OFM_dcmnet &&
	    (c.code() == DULC_UNRECOGNIZEDPDUTYPE || c.code() == DULC_ILLEGALPDU ||
	     c.code() == DULC_ILLEGALPDULENGTH || c.code() == DULC_UNEXPECTEDPDU ||
	     c.code() == DULC_UNSUPPORTEDPEERPROTOCOL))
		return DIANA_EPACS;
	if (c == DUL_NETWORKCLOSED)
		return DIANA_ECONNECT;
	if (c == EC_MemoryExhausted || c == DIMSE_OUTOFRESOURCES)
		return DIANA_ENOMEM;
	/* DIMSE_RECEIVEFAILED & co. wrap a DUL condition in their text only */
	if (strstr(c.text(), "Peer aborted"))
		return DIANA_EPACS;
	if (strstr(c.text(), "TCP I/O Error") || strstr(c.text(), "network closed"))
		return DIANA_ECONNECT;
	if (strstr(c.text(), "read timeout") || strstr(c.text(), "No data available"))
		return DIANA_ETIMEDOUT;
	return DIANA_ERROR;
}

int cond_error(const diana__dimse *d, const OFCondition &c, const char *what)
{
	int code = cond_code(c);
	switch (code) {
	case DIANA_ETIMEDOUT:
		return diana__error_set(code, "%s: no answer from %s within %d s", what, d->peer.c_str(),
		                        d->dimse_s);
	case DIANA_EPACS:
		if (c == DUL_PEERREQUESTEDRELEASE)
			return diana__error_set(code, "%s: %s released the association", what,
			                        d->peer.c_str());
		return diana__error_set(code, "%s: %s aborted the association", what, d->peer.c_str());
	case DIANA_ECONNECT:
		return diana__error_set(code, "%s: connection to %s lost (%s)", what, d->peer.c_str(),
		                        c.text());
	default:
		return diana__error_set(code ? code : DIANA_ERROR, "%s with %s failed: %s", what,
		                        d->peer.c_str(), c.text());
	}
}

std::string status_text(uint16_t status, const char *(*describe)(Uint16))
{
	char buf[16];
	snprintf(buf, sizeof(buf), "0x%04X", status);
	std::string s = buf;
	const char *t = describe ? describe(status) : nullptr;
	if (t && *t) {
		s += " (";
		s += t;
		s += ")";
	}
	return s;
}

/* --- presentation contexts ------------------------------------------------- */

static const char *const k_uncompressed[] = {
	UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
};
static const char *const k_lossless[] = {
	UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax,
	UID_JPEGLSLosslessTransferSyntax, UID_JPEG2000LosslessOnlyTransferSyntax,
	UID_RLELosslessTransferSyntax,
};
static const char *const k_lossy[] = {
	UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax,
	UID_JPEGLSLossyTransferSyntax, UID_JPEG2000TransferSyntax,
};

/* Image storage classes: three contexts each (uncompressed, lossless,
   lossy), so that a C-GET SCP can send an instance in the syntax it keeps. */
static const char *const k_image_classes[] = {
	UID_CTImageStorage, UID_EnhancedCTImageStorage, UID_MRImageStorage,
	UID_EnhancedMRImageStorage, UID_ComputedRadiographyImageStorage,
	UID_DigitalXRayImageStorageForPresentation, UID_DigitalXRayImageStorageForProcessing,
	UID_DigitalMammographyXRayImageStorageForPresentation,
	UID_DigitalMammographyXRayImageStorageForProcessing, UID_UltrasoundImageStorage,
	UID_UltrasoundMultiframeImageStorage, UID_SecondaryCaptureImageStorage,
	UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage,
	UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage,
	UID_MultiframeTrueColorSecondaryCaptureImageStorage, UID_NuclearMedicineImageStorage,
	UID_PositronEmissionTomographyImageStorage, UID_EnhancedPETImageStorage,
	UID_XRayAngiographicImageStorage, UID_EnhancedXAImageStorage,
	UID_XRayRadiofluoroscopicImageStorage, UID_RTImageStorage,
	UID_BreastTomosynthesisImageStorage, UID_DigitalIntraOralXRayImageStorageForPresentation,
	UID_VLPhotographicImageStorage, UID_VLEndoscopicImageStorage,
	UID_OphthalmicPhotography8BitImageStorage, UID_XRay3DAngiographicImageStorage,
	UID_LegacyConvertedEnhancedCTImageStorage,
};
/* Other storage classes (SR, presentation states, RT, documents): one context. */
static const char *const k_other_classes[] = {
	UID_RTDoseStorage, UID_RTStructureSetStorage, UID_RTPlanStorage, UID_RTIonPlanStorage,
	UID_BasicTextSRStorage, UID_EnhancedSRStorage, UID_ComprehensiveSRStorage,
	UID_Comprehensive3DSRStorage, UID_XRayRadiationDoseSRStorage,
	UID_EnhancedXRayRadiationDoseSRStorage, UID_RadiopharmaceuticalRadiationDoseSRStorage,
	UID_PatientRadiationDoseSRStorage, UID_MammographyCADSRStorage,
	UID_KeyObjectSelectionDocumentStorage, UID_GrayscaleSoftcopyPresentationStateStorage,
	UID_ColorSoftcopyPresentationStateStorage, UID_EncapsulatedPDFStorage,
	UID_SegmentationStorage, UID_RawDataStorage, UID_SpatialRegistrationStorage,
};

template <size_t N>
static void add_pc(T_ASC_Parameters *params, int &id, const char *abstract,
                   const char *const (&ts)[N], T_ASC_SC_ROLE role)
{
	const char *list[N];
	for (size_t i = 0; i < N; i++)
		list[i] = ts[i];
	if (id > 255)
		return;
	ASC_addPresentationContext(params, (T_ASC_PresentationContextID)id, abstract, list, (int)N,
	                           role);
	id += 2;
}

void add_qr_contexts(T_ASC_Parameters *params)
{
	int id = 1;
	add_pc(params, id, UID_VerificationSOPClass, k_uncompressed, ASC_SC_ROLE_DEFAULT);
	add_pc(params, id, UID_FINDStudyRootQueryRetrieveInformationModel, k_uncompressed,
	       ASC_SC_ROLE_DEFAULT);
	add_pc(params, id, UID_FINDPatientRootQueryRetrieveInformationModel, k_uncompressed,
	       ASC_SC_ROLE_DEFAULT);
	add_pc(params, id, UID_MOVEStudyRootQueryRetrieveInformationModel, k_uncompressed,
	       ASC_SC_ROLE_DEFAULT);
	add_pc(params, id, UID_MOVEPatientRootQueryRetrieveInformationModel, k_uncompressed,
	       ASC_SC_ROLE_DEFAULT);
	add_pc(params, id, UID_GETStudyRootQueryRetrieveInformationModel, k_uncompressed,
	       ASC_SC_ROLE_DEFAULT);
	add_pc(params, id, UID_GETPatientRootQueryRetrieveInformationModel, k_uncompressed,
	       ASC_SC_ROLE_DEFAULT);
	/* C-GET: we are the storage SCP of these (role selection) */
	for (const char *uid : k_image_classes) {
		add_pc(params, id, uid, k_uncompressed, ASC_SC_ROLE_SCP);
		add_pc(params, id, uid, k_lossless, ASC_SC_ROLE_SCP);
		add_pc(params, id, uid, k_lossy, ASC_SC_ROLE_SCP);
	}
	for (const char *uid : k_other_classes)
		add_pc(params, id, uid, k_uncompressed, ASC_SC_ROLE_SCP);
}

/* --- the query/retrieve association --------------------------------------- */

DIC_US next_id(diana__dimse *d)
{
	DIC_US id = d->next_msg_id++;
	if (d->next_msg_id == 0)
		d->next_msg_id = 1;
	return id;
}

static int assoc_fd(T_ASC_Association *a);

void end_assoc(T_ASC_Association *&a, End how)
{
	if (!a)
		return;
	switch (how) {
	case END_RELEASE:
		if (ASC_releaseAssociation(a).good())
			break;
		/* fall through */
	case END_ABORT: {
		int fd = assoc_fd(a);
		if (fd >= 0)
			shutdown(fd, SHUT_RD); /* DCMTK then does not wait for the peer to close */
		ASC_abortAssociation(a);
		break;
	}
	case END_PEER_RELEASED:
		ASC_dataWaiting(a, 1); /* the requestor closes the connection first */
		break;
	case END_CLOSE:
		break;
	}
	ASC_dropAssociation(a);
	ASC_destroyAssociation(&a);
	a = nullptr;
}

End end_for(int rc)
{
	return rc == DIANA_ETIMEDOUT || rc == DIANA_ECONNECT ? END_CLOSE : END_ABORT;
}

void drop_assoc(diana__dimse *d, End how)
{
	if (!d->assoc)
		return;
	end_assoc(d->assoc, how);
	static const char *const names[] = { "released", "aborted", "closed", "released by the peer" };
	diana__log(DIANA_LOG_DEBUG, "dimse", "association with %s %s", d->peer.c_str(), names[how]);
}

static const char *reject_reason(T_ASC_RejectParametersReason r)
{
	switch (r) {
	case ASC_REASON_SU_NOREASON: return "no reason given";
	case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED: return "application context not supported";
	case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED: return "calling AE title not recognized";
	case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED: return "called AE title not recognized";
	case ASC_REASON_SP_ACSE_NOREASON: return "no reason given (ACSE)";
	case ASC_REASON_SP_ACSE_PROTOCOLVERSIONNOTSUPPORTED: return "protocol version not supported";
	case ASC_REASON_SP_PRES_TEMPORARYCONGESTION: return "temporary congestion";
	case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED: return "local limit exceeded";
	}
	return "unknown reason";
}

/* The peer sent something while we were idle: a release request, an abort,
   or it closed the connection. Consume it and forget the association. */
static void check_idle_assoc(diana__dimse *d)
{
	if (!d->assoc || !ASC_dataWaiting(d->assoc, 0))
		return;
	T_ASC_PresentationContextID pc = 0;
	T_DIMSE_Message msg;
	memset(&msg, 0, sizeof(msg));
	OFCondition c = DIMSE_receiveCommand(d->assoc, DIMSE_NONBLOCKING, 1, &pc, &msg, nullptr);
	if (c == DUL_PEERREQUESTEDRELEASE) {
		ASC_acknowledgeRelease(d->assoc);
		end_assoc(d->assoc, END_PEER_RELEASED);
	} else {
		end_assoc(d->assoc, c.good() ? END_ABORT : END_CLOSE);
	}
	diana__log(DIANA_LOG_DEBUG, "dimse", "idle association with %s closed by the peer; reconnecting",
	           d->peer.c_str());
}

T_ASC_Parameters *new_params(diana__dimse *d)
{
	T_ASC_Parameters *params = nullptr;
	OFCondition c = ASC_createAssociationParameters(&params, (long)d->max_pdu);
	if (c.bad()) {
		cond_error(d, c, "association parameters");
		return nullptr;
	}
	ASC_setAPTitles(params, d->calling.c_str(), d->called.c_str(), nullptr);
	char peer_addr[128];
	snprintf(peer_addr, sizeof(peer_addr), "%s:%d", d->host.c_str(), d->port);
	ASC_setPresentationAddresses(params, OFStandard::getHostName().c_str(), peer_addr);
	return params;
}

int request_assoc(diana__dimse *d, T_ASC_Parameters *params, T_ASC_Association **out)
{
	*out = nullptr;
	/* process-wide in DCMTK 3.6.7 (see dimse.h) */
	dcmConnectionTimeout.set(d->connect_s);
	int64_t t0 = diana__now_ms();
	T_ASC_Association *a = nullptr;
	OFCondition c = ASC_requestAssociation(d->net, params, &a);
	if (c.bad()) {
		int rc;
		if (c == DUL_ASSOCIATIONREJECTED) {
			T_ASC_RejectParameters rej;
			memset(&rej, 0, sizeof(rej));
			ASC_getRejectParameters(params, &rej);
			rc = diana__error_set(DIANA_EAUTH, "association rejected by %s: %s (%s, %s)",
			                      d->peer.c_str(), reject_reason(rej.reason),
			                      rej.result == ASC_RESULT_REJECTEDTRANSIENT ? "transient" : "permanent",
			                      rej.source == ASC_SOURCE_SERVICEUSER ? "service user" : "service provider");
		} else if (c.module() == OFM_dcmnet && c.code() == DULC_UNKNOWNHOST) {
			rc = diana__error_set(DIANA_ECONNECT, "cannot connect to %s:%d: unknown host",
			                      d->host.c_str(), d->port);
		} else if (cond_code(c) == DIANA_EPACS && c != DUL_PEERABORTEDASSOCIATION &&
		           c != DUL_PEERREQUESTEDRELEASE) {
			rc = diana__error_set(DIANA_ECONNECT, "%s:%d is not a DICOM peer: %s", d->host.c_str(),
			                      d->port, c.text());
		} else if (c.module() == OFM_dcmnet && c.code() == DULC_TCPINITERROR) {
			if (strstr(c.text(), "(Timeout)"))
				rc = diana__error_set(DIANA_ECONNECT, "cannot connect to %s:%d: timed out after %lld ms",
				                      d->host.c_str(), d->port, (long long)(diana__now_ms() - t0));
			else
				rc = diana__error_set(DIANA_ECONNECT, "cannot connect to %s:%d: %s", d->host.c_str(),
				                      d->port, c.text());
		} else {
			rc = cond_error(d, c, "association request");
			if (rc == DIANA_ETIMEDOUT)
				rc = diana__error_set(DIANA_ETIMEDOUT, "no association answer from %s within %d s",
				                      d->peer.c_str(), d->acse_s);
		}
		if (a) {
			ASC_dropAssociation(a);
			ASC_destroyAssociation(&a); /* frees params */
		} else {
			ASC_destroyAssociationParameters(&params);
		}
		return rc;
	}
	if (ASC_countAcceptedPresentationContexts(a->params) == 0) {
		end_assoc(a, END_ABORT);
		return diana__error_set(DIANA_EUNSUPPORTED, "%s accepted no presentation context",
		                        d->peer.c_str());
	}
	diana__log(DIANA_LOG_DEBUG, "dimse", "association with %s as %s: %d of %d presentation contexts accepted, %lld ms",
	           d->peer.c_str(), d->calling.c_str(), ASC_countAcceptedPresentationContexts(a->params),
	           ASC_countPresentationContexts(a->params), (long long)(diana__now_ms() - t0));
	*out = a;
	return 0;
}

int ensure_assoc(diana__dimse *d)
{
	check_idle_assoc(d);
	if (d->assoc)
		return 0;
	T_ASC_Parameters *params = new_params(d);
	if (!params)
		return diana_error_code();
	add_qr_contexts(params);
	int rc = request_assoc(d, params, &d->assoc);
	if (rc < 0)
		return rc;
	d->next_msg_id = 1;
	return 0;
}

/* --- waiting ---------------------------------------------------------------- */

static int assoc_fd(T_ASC_Association *a)
{
	/* every connection of our networks comes from NodelayLayer */
	NodelayConnection *c = dynamic_cast<NodelayConnection *>(DUL_getTransportConnection(a->DULassociation));
	return c ? (int)c->fd() : -1;
}

int wait_any(T_ASC_Association *const *assocs, size_t n, int listen_fd, int ms,
             std::vector<char> &ready, bool *listen_ready)
{
	ready.assign(n, 0);
	if (listen_ready)
		*listen_ready = false;
	bool any = false;
	/* data already buffered by DCMTK's upper layer does not show in poll() */
	for (size_t i = 0; i < n; i++) {
		if (assocs[i] && DUL_dataWaiting(assocs[i]->DULassociation, 0)) {
			ready[i] = 1;
			any = true;
		}
	}
	if (any)
		return 1;
	std::vector<struct pollfd> p;
	std::vector<size_t> which;
	for (size_t i = 0; i < n; i++) {
		if (!assocs[i])
			continue;
		int fd = assoc_fd(assocs[i]);
		if (fd < 0) {
			ready[i] = 1; /* no socket: let the receive report the error */
			any = true;
			continue;
		}
		p.push_back({ fd, POLLIN, 0 });
		which.push_back(i);
	}
	if (any)
		return 1;
	if (listen_fd >= 0) {
		p.push_back({ listen_fd, POLLIN, 0 });
		which.push_back((size_t)-1);
	}
	int r = poll(p.data(), (nfds_t)p.size(), ms);
	if (r <= 0)
		return 0;
	for (size_t k = 0; k < p.size(); k++) {
		if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (which[k] == (size_t)-1) {
			if (listen_ready)
				*listen_ready = true;
		} else {
			ready[which[k]] = 1;
		}
		any = true;
	}
	return any ? 1 : 0;
}

/* --- datasets ---------------------------------------------------------------- */

static const char *level_name(int level)
{
	switch (level) {
	case DIANA__DIMSE_LEVEL_PATIENT: return "PATIENT";
	case DIANA__DIMSE_LEVEL_STUDY: return "STUDY";
	case DIANA__DIMSE_LEVEL_SERIES: return "SERIES";
	case DIANA__DIMSE_LEVEL_IMAGE: return "IMAGE";
	}
	return nullptr;
}

int make_identifier(const diana__dimse_query *q, DcmDataset **out)
{
	*out = nullptr;
	const char *level = level_name(q->level);
	if (!level)
		return diana__error_set(DIANA_EINVAL, "unknown query level %d", q->level);
	if (q->root != DIANA__DIMSE_STUDY_ROOT && q->root != DIANA__DIMSE_PATIENT_ROOT)
		return diana__error_set(DIANA_EINVAL, "unknown query model %d", q->root);
	if (q->root == DIANA__DIMSE_STUDY_ROOT && q->level == DIANA__DIMSE_LEVEL_PATIENT)
		return diana__error_set(DIANA_EINVAL, "the study root model has no PATIENT level");

	DcmDataset *id = new DcmDataset();
	if (q->keys || q->keys_json) {
		diana_dataset *tmp = nullptr;
		const diana_dataset *keys = q->keys;
		if (!keys) {
			int rc = diana_dataset_from_json(&tmp, q->keys_json, 0);
			if (rc < 0) {
				delete id;
				return rc;
			}
			keys = tmp;
		}
		uint8_t *buf = nullptr;
		size_t len = 0;
		int rc = diana_dataset_save_memory(keys, &buf, &len);
		diana_dataset_free(tmp);
		if (rc < 0) {
			delete id;
			return rc;
		}
		DcmInputBufferStream in;
		in.setBuffer(buf, (offile_off_t)len);
		in.setEos();
		DcmFileFormat ff;
		ff.transferInit();
		OFCondition c = ff.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
		ff.transferEnd();
		diana_free(buf);
		if (c.bad()) {
			delete id;
			return diana__error_set(DIANA_EDICOM, "query keys cannot be encoded: %s", c.text());
		}
		delete id;
		id = new DcmDataset(*ff.getDataset());
		/* a retrieve identifier carries no file meta, and no pixel data either */
		while (id->card() > 0) {
			DcmObject *e = id->nextInContainer(nullptr);
			if (!e || e->getGTag() != 0x0002)
				break;
			delete id->remove(e);
		}
	}
	id->putAndInsertString(DCM_QueryRetrieveLevel, level);
	*out = id;
	return 0;
}

int to_diana(DcmDataset *ds, diana_dataset **out)
{
	*out = nullptr;
	DcmFileFormat ff(ds);
	DcmMetaInfo *meta = ff.getMetaInfo();
	const Uint8 version[2] = { 0, 1 };
	meta->putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2);
	meta->putAndInsertString(DCM_TransferSyntaxUID, UID_LittleEndianExplicitTransferSyntax);
	const E_TransferSyntax xfer = EXS_LittleEndianExplicit;
	Uint32 est = ff.calcElementLength(xfer, EET_ExplicitLength);
	size_t cap = (size_t)est + 1024;
	std::vector<uint8_t> buf(cap);
	DcmOutputBufferStream os(buf.data(), (offile_off_t)cap);
	ff.transferInit();
	OFCondition c = ff.write(os, xfer, EET_ExplicitLength, nullptr, EGL_recalcGL, EPD_noChange,
	                         0, 0, 0, EWM_dontUpdateMeta);
	ff.transferEnd();
	if (c.bad())
		return diana__error_set(DIANA_EDICOM, "a C-FIND answer cannot be encoded: %s", c.text());
	void *data = nullptr;
	offile_off_t len = 0;
	os.flushBuffer(data, len);
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	o.flags = DIANA_OPEN_LENIENT; /* answers of real PACS are not always conformant */
	return diana_dataset_open_memory(out, (const uint8_t *)data, (size_t)len, &o);
}

/* a timeout in ms as DCMTK's seconds: <= 0 means `dflt`; at most a day */
int ms_to_s(int64_t ms, int64_t dflt)
{
	if (ms <= 0)
		ms = dflt;
	int64_t s = (ms + 999) / 1000;
	return s > 86400 ? 86400 : (int)s;
}

bool aet_ok(const char *s)
{
	/* 1 to 16 characters of the default repertoire, no backslash (PS3.5 AE) */
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x5c || ch > 0x7e)
			return false;
	}
	return true;
}

} /* namespace diana_dimse */

using namespace diana_dimse;

/* --- public (internal) API -------------------------------------------------- */

extern "C" int diana__dimse_new(diana__dimse **out, const diana__dimse_options *o)
{
	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = nullptr;
	if (!o || !o->host || !*o->host)
		return diana__error_set(DIANA_EINVAL, "a DIMSE peer needs a host");
	if (strlen(o->host) > 57)
		return diana__error_set(DIANA_EINVAL, "host name longer than 57 characters");
	if (o->port < 1 || o->port > 65535)
		return diana__error_set(DIANA_EINVAL, "invalid port %d", o->port);
	if (!aet_ok(o->called_aet))
		return diana__error_set(DIANA_EINVAL, "invalid called AE title (1 to 16 printable characters)");
	if (o->calling_aet && !aet_ok(o->calling_aet))
		return diana__error_set(DIANA_EINVAL, "invalid calling AE title (1 to 16 printable characters)");
	if (o->scp_aet && !aet_ok(o->scp_aet))
		return diana__error_set(DIANA_EINVAL, "invalid SCP AE title (1 to 16 printable characters)");
	if (o->max_pdu && (o->max_pdu < ASC_MINIMUMPDUSIZE || o->max_pdu > ASC_MAXIMUMPDUSIZE))
		return diana__error_set(DIANA_EINVAL, "max PDU %u outside %d..%d", o->max_pdu,
		                        ASC_MINIMUMPDUSIZE, ASC_MAXIMUMPDUSIZE);
	if (o->scp_port < DIANA__DIMSE_ANY_PORT || o->scp_port > 65535)
		return diana__error_set(DIANA_EINVAL, "invalid SCP port %d", o->scp_port);
	int rc = global_init();
	if (rc < 0)
		return rc;

	diana__dimse *d = nullptr;
	try {
		d = new diana__dimse();
		d->host = o->host;
		d->port = o->port;
		d->called = o->called_aet;
		d->calling = o->calling_aet ? o->calling_aet : "DIANA";
		d->scp_aet = o->scp_aet ? o->scp_aet : d->calling;
		d->scp_bind = o->scp_bind ? o->scp_bind : "127.0.0.1";
		const char *tmp = o->temp_dir;
		if (!tmp)
			tmp = secure_getenv("TMPDIR");
		d->temp_dir = tmp && *tmp ? tmp : "/tmp";
		d->connect_s = ms_to_s(o->connect_timeout_ms, 10000);
		d->acse_s = ms_to_s(o->acse_timeout_ms, 30000);
		d->dimse_s = ms_to_s(o->dimse_timeout_ms, 60000);
		d->dimse_ms = (int64_t)d->dimse_s * 1000;
		d->max_pdu = o->max_pdu ? o->max_pdu : 65536;
		d->peer = d->called + "@" + d->host + ":" + std::to_string(d->port);
	} catch (...) {
		delete d;
		return diana__error_oom();
	}

	{
		SigpipeGuard g;
		OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, d->acse_s, &d->net);
		if (c.good()) {
			NodelayLayer *layer = new (std::nothrow) NodelayLayer(d->dimse_s);
			c = layer ? ASC_setTransportLayer(d->net, layer, 1) : EC_MemoryExhausted;
		}
		if (c.bad()) {
			rc = cond_error(d, c, "network initialisation");
			diana__dimse_free(d);
			return rc;
		}
	}
	if (o->scp_port != 0) {
		d->scp_port = o->scp_port == DIANA__DIMSE_ANY_PORT ? 0 : o->scp_port;
		rc = scp_listen(d);
		if (rc < 0) {
			diana__dimse_free(d);
			return rc;
		}
	}
	*out = d;
	return 0;
}

extern "C" void diana__dimse_free(diana__dimse *d)
{
	if (!d)
		return;
	try {
		SigpipeGuard g;
		drop_assoc(d, END_RELEASE);
		scp_close(d);
		if (d->net)
			ASC_dropNetwork(&d->net);
	} catch (...) {
	}
	delete d;
}

extern "C" int diana__dimse_close(diana__dimse *d)
{
	if (!d)
		return diana__error_set(DIANA_EINVAL, "NULL DIMSE handle");
	try {
		SigpipeGuard g;
		drop_assoc(d, END_RELEASE);
	} catch (...) {
		return diana__error_set(DIANA_ERROR, "unexpected exception in DCMTK");
	}
	return 0;
}

extern "C" int diana__dimse_scp_port(const diana__dimse *d)
{
	return d && d->listen_fd >= 0 ? d->scp_port : 0;
}

extern "C" void diana__dimse_cancel(diana__dimse *d)
{
	if (d)
		d->cancel.store(1);
}

extern "C" int diana__dimse_echo(diana__dimse *d)
{
	if (!d)
		return diana__error_set(DIANA_EINVAL, "NULL DIMSE handle");
	int rc;
	try {
		SigpipeGuard g;
		if (d->cancel.exchange(0))
			return diana__error_set(DIANA_ECANCELLED, "C-ECHO cancelled");
		rc = ensure_assoc(d);
		if (rc < 0)
			return rc;
		if (!ASC_findAcceptedPresentationContextID(d->assoc, UID_VerificationSOPClass)) {
			return diana__error_set(DIANA_EUNSUPPORTED, "%s does not accept C-ECHO (Verification)",
			                        d->peer.c_str());
		}
		DIC_US status = 0;
		DcmDataset *detail = nullptr;
		int64_t t0 = diana__now_ms();
		OFCondition c = DIMSE_echoUser(d->assoc, next_id(d), DIMSE_NONBLOCKING, d->dimse_s, &status,
		                               &detail);
		delete detail;
		if (c.bad()) {
			rc = cond_error(d, c, "C-ECHO");
			drop_assoc(d, end_for(rc));
			return rc;
		}
		if (status != STATUS_Success)
			return diana__error_set(DIANA_EPACS, "C-ECHO to %s: status %s", d->peer.c_str(),
			                        status_text(status, DU_cechoStatusString).c_str());
		diana__log(DIANA_LOG_DEBUG, "dimse", "C-ECHO %s: %lld ms", d->peer.c_str(),
		           (long long)(diana__now_ms() - t0));
		return 0;
	} catch (const std::bad_alloc &) {
		return diana__error_oom();
	} catch (...) {
		return diana__error_set(DIANA_ERROR, "unexpected exception in DCMTK");
	}
}
