// Throwaway toolkit measurement: DCMTK 3.6.7 dcmnet (DcmSCU) against the lab PACS.
// usage: bench_dcmtk OP HOST PORT CALLED CALLING [ARGS]
//   echo | find ACCESSION | get STUDYUID OUTDIR | store FILE...
// Prints the wall time of the operation in ms (association included).
// TCP_NODELAY comes from the environment, as for DCMTK's own tools.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/oflog/oflog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

static double now_ms()
{
	return std::chrono::duration<double, std::milli>(
		std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
	std::string op = argv[1];
	double t0 = now_ms();
	DcmSCU scu;
	scu.setPeerHostName(argv[2]);
	scu.setPeerPort((Uint16)atoi(argv[3]));
	scu.setPeerAETitle(argv[4]);
	scu.setAETitle(argv[5]);
	scu.setMaxReceivePDULength(65536);
	scu.setACSETimeout(30);
	scu.setDIMSETimeout(60);
	OFList<OFString> ts;
	ts.push_back(UID_LittleEndianExplicitTransferSyntax);
	ts.push_back(UID_LittleEndianImplicitTransferSyntax);
	size_t n = 0;
	bool ok = false;
	if (op == "echo") {
		scu.addPresentationContext(UID_VerificationSOPClass, ts);
	} else if (op == "find") {
		scu.addPresentationContext(UID_FINDStudyRootQueryRetrieveInformationModel, ts);
	} else if (op == "get") {
		scu.addPresentationContext(UID_GETStudyRootQueryRetrieveInformationModel, ts);
		scu.addPresentationContext(UID_CTImageStorage, ts, ASC_SC_ROLE_SCP);
		scu.setStorageMode(DCMSCU_STORAGE_BIT_PRESERVING);
		scu.setStorageDir(argv[7]);
	} else if (op == "store") {
		scu.addPresentationContext(UID_CTImageStorage, ts);
	}
	if (scu.initNetwork().bad() || scu.negotiateAssociation().bad()) {
		printf("%s FAILED association\n", op.c_str());
		return 1;
	}
	if (op == "echo") {
		ok = scu.sendECHORequest(0).good();
	} else if (op == "find") {
		DcmDataset q;
		q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
		q.putAndInsertString(DCM_AccessionNumber, argv[6]);
		q.putAndInsertString(DCM_PatientName, "");
		q.putAndInsertString(DCM_PatientID, "");
		q.putAndInsertString(DCM_StudyInstanceUID, "");
		q.putAndInsertString(DCM_NumberOfStudyRelatedInstances, "");
		OFList<QRResponse *> rsp;
		T_ASC_PresentationContextID pc =
			scu.findPresentationContextID(UID_FINDStudyRootQueryRetrieveInformationModel, "");
		ok = scu.sendFINDRequest(pc, &q, &rsp).good();
		for (auto *r : rsp) {
			if (r->m_dataset)
				n++;
			delete r;
		}
	} else if (op == "get") {
		DcmDataset q;
		q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
		q.putAndInsertString(DCM_StudyInstanceUID, argv[6]);
		OFList<RetrieveResponse *> rsp;
		T_ASC_PresentationContextID pc =
			scu.findPresentationContextID(UID_GETStudyRootQueryRetrieveInformationModel, "");
		ok = scu.sendCGETRequest(pc, &q, &rsp).good();
		if (!rsp.empty()) {
			n = rsp.back()->m_numberOfCompletedSubops;
			ok = ok && rsp.back()->m_status == 0;
		}
		for (auto *r : rsp)
			delete r;
	} else if (op == "store") {
		ok = true;
		for (int i = 6; i < argc; i++) {
			Uint16 st = 0xffff;
			if (scu.sendSTORERequest(0, argv[i], NULL, st).bad() || st != 0)
				ok = false;
			n++;
		}
	}
	scu.releaseAssociation();
	double t = now_ms() - t0;
	printf("%s %s %.1f ms n=%zu\n", op.c_str(), ok ? "ok" : "FAILED", t, n);
	return ok ? 0 : 1;
}
