/*
 * libdiana - DIMSE C-STORE SCU: the files' headers are read first, then one
 * association per 127 distinct (SOP class, transfer syntax) pairs carries
 * them, each in its own transfer syntax.
 * SPDX-License-Identifier: MIT
 */
#include "dimse_priv.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/diutil.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <map>
#include <new>
#include <utility>

namespace {

struct FileInfo {
	std::string cls, inst, ts;
	uint64_t size = 0;
	int batch = 0;
};

int scan(const char *path, FileInfo &fi)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return diana__error_set(diana__errno_code(errno), "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return diana__error_set(DIANA_EINVAL, "%s: not a regular file", path);
	fi.size = (uint64_t)st.st_size;
	DcmFileFormat ff;
	OFCondition c = ff.loadFileUntilTag(path, EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
	                                    ERM_autoDetect, DcmTagKey(0x0008, 0x0019));
	if (c.bad())
		return diana__error_set(DIANA_EDICOM, "%s: not readable as DICOM: %s", path, c.text());
	OFString cls, inst, ts;
	DcmMetaInfo *meta = ff.getMetaInfo();
	DcmDataset *ds = ff.getDataset();
	if (meta) {
		meta->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls);
		meta->findAndGetOFString(DCM_MediaStorageSOPInstanceUID, inst);
		meta->findAndGetOFString(DCM_TransferSyntaxUID, ts);
	}
	if (cls.empty())
		ds->findAndGetOFString(DCM_SOPClassUID, cls);
	if (inst.empty())
		ds->findAndGetOFString(DCM_SOPInstanceUID, inst);
	if (ts.empty()) {
		DcmXfer x(ds->getOriginalXfer());
		if (x.getXfer() != EXS_Unknown)
			ts = x.getXferID();
	}
	if (cls.empty() || inst.empty() || ts.empty())
		return diana__error_set(DIANA_EDICOM, "%s: no SOP Class UID, SOP Instance UID or transfer syntax",
		                        path);
	fi.cls = cls.c_str();
	fi.inst = inst.c_str();
	fi.ts = ts.c_str();
	return 0;
}

bool is_uncompressed_le(const std::string &ts)
{
	return ts == UID_LittleEndianExplicitTransferSyntax || ts == UID_LittleEndianImplicitTransferSyntax;
}

const char *other_le(const std::string &ts)
{
	return ts == UID_LittleEndianExplicitTransferSyntax ? UID_LittleEndianImplicitTransferSyntax
	                                                    : UID_LittleEndianExplicitTransferSyntax;
}

bool store_ok(uint16_t s)
{
	return s == STATUS_Success || (s & 0xF000) == 0xB000 || s == 0x0001;
}

} /* namespace */

using namespace diana_dimse;

extern "C" int diana__dimse_store(diana__dimse *d, const char *const *paths, size_t n,
                                  diana__dimse_store_fn fn, void *user_data,
                                  diana__dimse_result *res)
{
	if (res)
		memset(res, 0, sizeof(*res));
	if (!d || (!paths && n > 0))
		return diana__error_set(DIANA_EINVAL, "NULL argument to C-STORE");
	try {
		SigpipeGuard guard;
		if (d->cancel.exchange(0))
			return diana__error_set(DIANA_ECANCELLED, "C-STORE cancelled");
		if (n == 0)
			return 0;

		/* headers first: nothing is sent when a file is unreadable */
		std::vector<FileInfo> files(n);
		std::vector<std::map<std::pair<std::string, std::string>, int>> batches(1);
		for (size_t i = 0; i < n; i++) {
			if (!paths[i])
				return diana__error_set(DIANA_EINVAL, "NULL path at index %zu", i);
			int rc = scan(paths[i], files[i]);
			if (rc < 0)
				return rc;
			auto key = std::make_pair(files[i].cls, files[i].ts);
			if (!batches.back().count(key) && batches.back().size() >= 127)
				batches.emplace_back();
			batches.back().emplace(key, 0);
			files[i].batch = (int)batches.size() - 1;
		}

		diana__dimse_result out;
		memset(&out, 0, sizeof(out));
		int64_t t0 = diana__now_ms();
		uint64_t bytes = 0;
		int stop_rc = 0;
		for (size_t b = 0; b < batches.size() && !stop_rc; b++) {
			T_ASC_Parameters *params = new_params(d);
			if (!params)
				return diana_error_code();
			int id = 1;
			for (auto &kv : batches[b]) {
				const char *ts[2] = { kv.first.second.c_str(), nullptr };
				int nts = 1;
				if (is_uncompressed_le(kv.first.second))
					ts[nts++] = other_le(kv.first.second);
				ASC_addPresentationContext(params, (T_ASC_PresentationContextID)id,
				                           kv.first.first.c_str(), ts, nts);
				id += 2;
			}
			T_ASC_Association *a = nullptr;
			int rc = request_assoc(d, params, &a);
			if (rc < 0)
				return rc;
			for (size_t i = 0; i < n; i++) {
				if (files[i].batch != (int)b)
					continue;
				if (d->cancel.exchange(0)) {
					stop_rc = diana__error_set(DIANA_ECANCELLED, "C-STORE cancelled");
					break;
				}
				const FileInfo &f = files[i];
				T_ASC_PresentationContextID pc =
					ASC_findAcceptedPresentationContextID(a, f.cls.c_str(), f.ts.c_str());
				if (!pc && is_uncompressed_le(f.ts))
					pc = ASC_findAcceptedPresentationContextID(a, f.cls.c_str(), other_le(f.ts));
				uint16_t status;
				if (!pc) {
					status = STATUS_STORE_Refused_SOPClassNotSupported;
				} else {
					T_DIMSE_C_StoreRQ rq;
					memset(&rq, 0, sizeof(rq));
					rq.MessageID = next_id(d);
					OFStandard::strlcpy(rq.AffectedSOPClassUID, f.cls.c_str(), sizeof(rq.AffectedSOPClassUID));
					OFStandard::strlcpy(rq.AffectedSOPInstanceUID, f.inst.c_str(),
					                    sizeof(rq.AffectedSOPInstanceUID));
					rq.DataSetType = DIMSE_DATASET_PRESENT;
					rq.Priority = DIMSE_PRIORITY_MEDIUM;
					T_DIMSE_C_StoreRSP rsp;
					memset(&rsp, 0, sizeof(rsp));
					DcmDataset *detail = nullptr;
					OFCondition c = DIMSE_storeUser(a, pc, &rq, paths[i], nullptr, nullptr, nullptr,
					                                DIMSE_NONBLOCKING, d->dimse_s, &rsp, &detail,
					                                nullptr, (long)f.size);
					delete detail;
					if (c.bad()) {
						stop_rc = cond_error(d, c, "C-STORE");
						end_assoc(a, end_for(stop_rc));
						break;
					}
					status = rsp.DimseStatus;
					bytes += f.size;
				}
				if (store_ok(status)) {
					out.completed++;
					if (status != STATUS_Success)
						out.warning++;
				} else {
					out.failed++;
					if (!out.status)
						out.status = status;
				}
				int cb = fn ? fn(i, paths[i], status, user_data) : 0;
				if (cb) {
					stop_rc = cb < 0 ? cb : diana__error_set(DIANA_EUSER, "C-STORE stopped by the callback");
					break;
				}
			}
			end_assoc(a, END_RELEASE);
		}
		if (res)
			*res = out;
		d->cancel.store(0);
		diana__log(DIANA_LOG_DEBUG, "dimse",
		           "C-STORE to %s: %u stored, %u failed, %zu association(s), %llu bytes, %lld ms",
		           d->peer.c_str(), out.completed, out.failed, batches.size(),
		           (unsigned long long)bytes, (long long)(diana__now_ms() - t0));
		if (stop_rc)
			return stop_rc;
		if (out.failed)
			return diana__error_set(DIANA_EPACS, "C-STORE to %s: %u of %zu files refused (first status %s)",
			                        d->peer.c_str(), out.failed, n,
			                        status_text(out.status, DU_cstoreStatusString).c_str());
		return 0;
	} catch (const std::bad_alloc &) {
		return diana__error_oom();
	} catch (...) {
		return diana__error_set(DIANA_ERROR, "unexpected exception in DCMTK");
	}
}
