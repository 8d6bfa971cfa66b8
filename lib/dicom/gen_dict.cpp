/*
 * gen-dict - build-time generator of libdiana's data dictionary table.
 *
 * Writes GDCM's public data dictionary (gdcm::Global's, the one libdiana
 * used at run time before) as a constant C++ table: one row per entry that
 * has a keyword, ordered by tag, and an index ordered by keyword (the lowest
 * tag first where a keyword names a repeating group). libdiana then needs
 * neither libgdcmDICT nor its start-up: GDCM builds that dictionary, 5,000
 * entries in std::maps, in a static constructor of every process that loads
 * it (~60 million instructions, a third of `diana anon`'s start-up).
 *
 * usage: gen-dict OUTPUT.inc
 * SPDX-License-Identifier: MIT
 */
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <gdcmDict.h>
#include <gdcmDictEntry.h>
#include <gdcmDicts.h>
#include <gdcmGlobal.h>
#include <gdcmVR.h>
#include <gdcmVersion.h>

namespace {

struct Row {
	unsigned tag;
	std::string vr; /* two letters, or OB_OW / US_SS / US_SS_OW / US_OW */
	std::string keyword;
};

/* a C string literal of a keyword (letters and digits only in GDCM's dictionary) */
bool plain(const std::string &s)
{
	for (char c : s)
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return false;
	return !s.empty();
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 2) {
		std::fprintf(stderr, "usage: gen-dict OUTPUT.inc\n");
		return 2;
	}
	const gdcm::Dict &d = gdcm::Global::GetInstance().GetDicts().GetPublicDict();
	std::vector<Row> rows;
	for (auto it = d.Begin(); it != d.End(); ++it) {
		const char *kw = it->second.GetKeyword();
		if (!kw || !*kw)
			continue;
		if (!plain(kw)) {
			std::fprintf(stderr, "gen-dict: unexpected keyword '%s'\n", kw);
			return 1;
		}
		unsigned tag = (static_cast<unsigned>(it->first.GetGroup()) << 16) | it->first.GetElement();
		gdcm::VR::VRType v = it->second.GetVR();
		std::string vr;
		switch (v) {
		case gdcm::VR::OB_OW: vr = "OB_OW"; break;
		case gdcm::VR::US_SS: vr = "US_SS"; break;
		case gdcm::VR::US_SS_OW: vr = "US_SS_OW"; break;
		case gdcm::VR::US_OW: vr = "US_OW"; break;
		default: {
			const char *s = gdcm::VR::GetVRString(v);
			vr = (s && std::strlen(s) == 2) ? s : "";
			break;
		}
		}
		rows.push_back(Row{ tag, vr, kw });
	}
	if (rows.size() < 1000) {
		std::fprintf(stderr, "gen-dict: only %zu entries in GDCM's public dictionary\n", rows.size());
		return 1;
	}
	/* std::map order already; made explicit */
	std::stable_sort(rows.begin(), rows.end(), [](const Row &a, const Row &b) { return a.tag < b.tag; });

	/* keyword index: the lowest tag of a keyword wins (as the map built from
	 * the dictionary in tag order did) */
	std::vector<size_t> by_kw;
	for (size_t i = 0; i < rows.size(); i++)
		by_kw.push_back(i);
	std::stable_sort(by_kw.begin(), by_kw.end(),
	                 [&](size_t a, size_t b) { return rows[a].keyword < rows[b].keyword; });
	by_kw.erase(std::unique(by_kw.begin(), by_kw.end(),
	                        [&](size_t a, size_t b) { return rows[a].keyword == rows[b].keyword; }),
	            by_kw.end());

	std::string tmp = std::string(argv[1]) + ".tmp";
	FILE *f = std::fopen(tmp.c_str(), "w");
	if (!f) {
		std::perror(tmp.c_str());
		return 1;
	}
	std::fprintf(f, "/* Generated at build time by lib/dicom/gen_dict.cpp from the public data\n"
	                " * dictionary of GDCM %s: do not edit. */\n\n",
	             gdcm::Version::GetVersion());
	std::fprintf(f, "static const DictRow dict_rows[%zu] = {\n", rows.size());
	for (const Row &r : rows) {
		std::string vr = r.vr.empty() ? "DV_NONE" : r.vr.size() == 2 ? "DV('" + r.vr.substr(0, 1) + "', '" +
		                                                                       r.vr.substr(1, 1) + "')"
		                                                             : "DV_" + r.vr;
		std::fprintf(f, "\t{ 0x%08Xu, %s, \"%s\" },\n", r.tag, vr.c_str(), r.keyword.c_str());
	}
	std::fprintf(f, "};\n\nstatic const unsigned short dict_by_keyword[%zu] = {\n", by_kw.size());
	for (size_t i = 0; i < by_kw.size(); i++)
		std::fprintf(f, "%s%zu,%s", i % 12 ? " " : "\t", by_kw[i], i % 12 == 11 ? "\n" : "");
	std::fprintf(f, "\n};\n");
	if (rows.size() > 65535) {
		std::fprintf(stderr, "gen-dict: too many rows for the index type\n");
		std::fclose(f);
		return 1;
	}
	if (std::ferror(f) || std::fclose(f) != 0 || std::rename(tmp.c_str(), argv[1]) != 0) {
		std::perror(argv[1]);
		return 1;
	}
	return 0;
}
