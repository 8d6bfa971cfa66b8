// Throwaway toolkit measurement: GDCM 3.0.21 network layer against the lab PACS.
// usage: bench_gdcm OP HOST PORT CALLED CALLING [ARGS]
//   echo | find ACCESSION | move STUDYUID SCPPORT OUTDIR | store FILE...
// Prints the wall time of the operation in ms (association included).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gdcmCompositeNetworkFunctions.h>
#include <gdcmDataSet.h>
#include <gdcmTrace.h>

static double now_ms()
{
	return std::chrono::duration<double, std::milli>(
		std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	if (!getenv("GDCM_TRACE")) { gdcm::Trace::SetWarning(false);
	gdcm::Trace::SetError(false);
	gdcm::Trace::SetDebug(false); } else { gdcm::Trace::SetDebug(true); gdcm::Trace::SetWarning(true); gdcm::Trace::SetError(true);}
	std::string op = argv[1];
	const char *host = argv[2];
	uint16_t port = (uint16_t)atoi(argv[3]);
	const char *called = argv[4], *calling = argv[5];
	double t0 = now_ms();
	bool ok = false;
	size_t n = 0;
	std::string exc;
	try {
	if (op == "echo") {
		ok = gdcm::CompositeNetworkFunctions::CEcho(host, port, calling, called);
	} else if (op == "find" && argc > 6) {
		gdcm::CompositeNetworkFunctions::KeyValuePairArrayType keys;
		keys.push_back({gdcm::Tag(0x0008, 0x0050), argv[6]});
		keys.push_back({gdcm::Tag(0x0010, 0x0010), ""});
		keys.push_back({gdcm::Tag(0x0010, 0x0020), ""});
		keys.push_back({gdcm::Tag(0x0020, 0x000d), ""});
		keys.push_back({gdcm::Tag(0x0020, 0x1208), ""});
		gdcm::BaseRootQuery *q = gdcm::CompositeNetworkFunctions::ConstructQuery(
			gdcm::eStudyRootType, gdcm::eStudy, keys, gdcm::eFind);
		std::vector<gdcm::DataSet> answers;
		ok = q && gdcm::CompositeNetworkFunctions::CFind(host, port, q, answers, calling, called);
		n = answers.size();
		delete q;
	} else if (op == "move" && argc > 8) {
		gdcm::CompositeNetworkFunctions::KeyValuePairArrayType keys;
		keys.push_back({gdcm::Tag(0x0020, 0x000d), argv[6]});
		gdcm::BaseRootQuery *q = gdcm::CompositeNetworkFunctions::ConstructQuery(
			gdcm::eStudyRootType, gdcm::eStudy, keys, gdcm::eMove);
		ok = q && gdcm::CompositeNetworkFunctions::CMove(host, port, q, (uint16_t)atoi(argv[7]),
		                                                 calling, called, argv[8]);
		delete q;
	} else if (op == "store" && argc > 6) {
		gdcm::Directory::FilenamesType files;
		for (int i = 6; i < argc; i++)
			files.push_back(argv[i]);
		ok = gdcm::CompositeNetworkFunctions::CStore(host, port, files, calling, called);
		n = files.size();
	}
	} catch (const std::exception &e) {
		exc = e.what();
	}
	double t = now_ms() - t0;
	printf("%s %s %.1f ms n=%zu%s%s\n", op.c_str(), ok ? "ok" : "FAILED", t, n,
	       exc.empty() ? "" : " exception: ", exc.c_str());
	return ok ? 0 : 1;
}
