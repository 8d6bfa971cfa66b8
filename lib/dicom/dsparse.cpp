/*
 * libdiana - DICOM reader: Part 10 files and raw datasets into the model of
 * dsmodel.h.
 *
 * Why our own reader rather than gdcm::Reader: GDCM 3.0.21 cannot read
 * datasets whose transfer syntax it does not know (HTJ2K, Deflated Image
 * Frame Compression), silently repairs defects a de-identification pipeline
 * must see (it switches to implicit VR when explicit VR does not parse,
 * rewrites some lengths when built with GDCM_SUPPORT_BROKEN_IMPLEMENTATION,
 * as Debian's is), and allocates whatever length a header claims. This reader
 * checks every length against the bytes that remain before allocating, walks
 * sequences and encapsulated pixel data to their delimiters, and reports the
 * first defect as a one-line message that names tags and offsets only.
 * SPDX-License-Identifier: MIT
 */
#include <cstring>
#include <string>

#include <zlib.h>

#include "../core/core.h"
#include "dsmodel.h"

namespace diana_dcm {

bool ts_encoding(const std::string &uid, Encoding *enc)
{
	if (uid == TS_IMPLICIT_LE)
		*enc = Encoding::ImplicitLE;
	else if (uid == TS_EXPLICIT_BE)
		*enc = Encoding::ExplicitBE;
	else if (uid == TS_DEFLATED_LE)
		*enc = Encoding::DeflatedLE;
	else if (uid.compare(0, 18, "1.2.840.10008.1.2.") == 0 && uid.size() > 18 && valid_ui(uid))
		*enc = Encoding::ExplicitLE; /* every other standard transfer syntax */
	else
		return false;
	return true;
}

namespace {

constexpr int MAX_DEPTH = 64;

bool printable(uint8_t c)
{
	return c >= 0x20 && c < 0x7F;
}

class Parser {
public:
	Parser(const uint8_t *p, size_t n, const ParseOptions &o) : p_(p), n_(n), o_(o) {}

	bool explicit_ = true;
	bool be_ = false;
	bool stopped_ = false;
	const Item *root_ = nullptr;

	uint16_t r16(size_t pos) const { return be_ ? be16(p_ + pos) : le16(p_ + pos); }
	uint32_t r32(size_t pos) const { return be_ ? be32(p_ + pos) : le32(p_ + pos); }
	uint32_t rtag(size_t pos) const { return (static_cast<uint32_t>(r16(pos)) << 16) | r16(pos + 2); }

	[[noreturn]] void truncated(size_t limit, uint32_t tag)
	{
		if (limit == n_ && o_.partial)
			throw NeedMore();
		if (limit == n_)
			fail(DIANA_EDICOM, "data ends inside element (%04X,%04X): input truncated",
			     tag >> 16, tag & 0xFFFF);
		fail(DIANA_EDICOM, "element (%04X,%04X) overruns its enclosing item or sequence",
		     tag >> 16, tag & 0xFFFF);
	}

	bool zeros(size_t pos, size_t limit) const
	{
		for (size_t i = pos; i < limit; i++)
			if (p_[i])
				return false;
		return true;
	}

	int pixel_rep(const Item &cur) const
	{
		const Element *e = cur.find(0x00280103);
		if (!e && root_)
			e = root_->find(0x00280103);
		if (e && e->value.size() >= 2)
			return le16(reinterpret_cast<const uint8_t *>(e->value.data()));
		return 0;
	}

	void parse_elements(size_t &pos, size_t limit, bool undef_item, Item &out, bool top, uint32_t owner)
	{
		uint32_t last = 0;
		bool any = false;
		for (;;) {
			if (pos == limit) {
				if (undef_item)
					truncated(limit, owner);
				return;
			}
			if (limit - pos < 8) {
				/* a few zero bytes of padding after the last element */
				if (top && !o_.partial && zeros(pos, limit))
					return;
				truncated(limit, any ? last : owner);
			}
			uint32_t tag = rtag(pos);
			if ((tag >> 16) == 0xFFFE) {
				if (tag == TAG_ITEM_DELIM && undef_item) {
					if (r32(pos + 4) != 0 && !o_.lenient)
						fail(DIANA_EDICOM, "item delimiter with a non-zero length at offset %zu", pos);
					pos += 8;
					return;
				}
				fail(DIANA_EDICOM, "unexpected delimiter (FFFE,%04X) at offset %zu", tag & 0xFFFF, pos);
			}
			if (top && o_.skip_pixels && tag >= TAG_PIXEL_DATA) {
				stopped_ = true;
				return;
			}
			/* elements out of tag order are kept (sorted): each one is
			 * self-delimiting, so the order is no ambiguity; a duplicate is */
			Element el;
			parse_element(pos, limit, el, out);
			if (!out.insert(std::move(el)))
				fail(DIANA_EDICOM, "duplicate element (%04X,%04X)", tag >> 16, tag & 0xFFFF);
			last = tag;
			any = true;
		}
	}

	void parse_element(size_t &pos, size_t limit, Element &el, const Item &cur)
	{
		uint32_t tag = rtag(pos);
		uint32_t vl;
		uint16_t vr;
		size_t hdr;

		el.tag = tag;
		if (explicit_) {
			uint8_t a = p_[pos + 4], b = p_[pos + 5];
			uint16_t v = vr2(static_cast<char>(a), static_cast<char>(b));
			if (vr_known(v)) {
				vr = v;
				if (vr_long_form(v)) {
					if (limit - pos < 12)
						truncated(limit, tag);
					vl = r32(pos + 8);
					hdr = 12;
				} else {
					vl = r16(pos + 6);
					hdr = 8;
				}
			} else if (o_.lenient && printable(a) && printable(b)) {
				/* non-standard VR: read as DCMTK does, with a 2-byte length */
				vr = dict_vr(tag, pixel_rep(cur));
				vl = r16(pos + 6);
				hdr = 8;
			} else if (printable(a) && printable(b)) {
				fail(DIANA_EDICOM, "element (%04X,%04X) has a non-standard VR (bytes %02X %02X)",
				     tag >> 16, tag & 0xFFFF, a, b);
			} else {
				fail(DIANA_EDICOM,
				     "element (%04X,%04X) at offset %zu has no VR (bytes %02X %02X): "
				     "the data is not encoded as its transfer syntax says",
				     tag >> 16, tag & 0xFFFF, pos, a, b);
			}
		} else {
			vl = r32(pos + 4);
			hdr = 8;
			vr = dict_vr(tag, pixel_rep(cur));
		}
		pos += hdr;
		el.vr = vr;

		if (vl == UNDEFINED_LENGTH) {
			if (tag == TAG_PIXEL_DATA && (vr == VR_OB || vr == VR_OW)) {
				if (!explicit_ && !o_.lenient)
					fail(DIANA_EDICOM, "encapsulated pixel data in an implicit VR dataset");
				parse_fragments(pos, limit, el);
				return;
			}
			if (vr == VR_SQ || vr == VR_UN || !explicit_) {
				/* explicit UN of undefined length: implicit VR LE inside (CP-246) */
				bool cp246 = explicit_ && vr == VR_UN;
				el.vr = VR_SQ;
				el.undef_len = true;
				parse_sequence(pos, limit, true, el, cp246);
				return;
			}
			fail(DIANA_EDICOM, "element (%04X,%04X) with VR %s has an undefined length",
			     tag >> 16, tag & 0xFFFF, vr_str(vr).c_str());
		}
		if (vl > limit - pos)
			truncated(limit, tag);
		if (vr == VR_SQ) {
			el.sq_len = vl;
			parse_sequence(pos, pos + vl, false, el, false);
			return;
		}
		if (vr == VR_UN && explicit_ && !be_ && resolve_un(pos, vl, el, cur)) {
			pos += vl;
			return;
		}
		el.value.assign(reinterpret_cast<const char *>(p_ + pos), vl);
		pos += vl;
		if (vr_is_numeric(vr) || vr == VR_AT) {
			unsigned unit = vr == VR_AT ? 4 : vr_word_size(vr);
			if (vl % unit)
				fail(DIANA_EDICOM, "element (%04X,%04X) has a length that is not a multiple of %u",
				     tag >> 16, tag & 0xFFFF, unit);
		}
		if (be_ && vr != VR_UN)
			swap_words(el.value, vr_word_size(vr));
	}

	/* A public element stored as UN (PS3.5 6.2.2, e.g. after a round trip
	 * through a system that did not know its VR): give it its dictionary
	 * VR so that its text is seen (and de-identified) as text. Sequences
	 * inside are implicit VR little endian (CP-246). Private elements stay
	 * UN: no private dictionary is guessed from. */
	bool resolve_un(size_t pos, uint32_t vl, Element &el, const Item &cur)
	{
		uint32_t tag = el.tag;
		if ((tag >> 16) & 1 || (tag & 0xFFFF) == 0 || (tag >> 16) == 0xFFFE)
			return false;
		uint16_t dv = dict_vr(tag, pixel_rep(cur));
		if (dv == VR_UN)
			return false;
		if (dv == VR_SQ) {
			ParseOptions so = o_;
			so.partial = false;
			Parser sub(p_ + pos, vl, so);
			sub.explicit_ = false;
			sub.be_ = false;
			sub.root_ = root_;
			sub.depth_ = depth_;
			Element tmp;
			tmp.tag = tag;
			size_t spos = 0;
			try {
				sub.parse_sequence(spos, vl, false, tmp, false);
			} catch (const Error &) {
				return false; /* not a sequence after all: keep the bytes as UN */
			}
			el.vr = VR_SQ;
			el.sq_len = vl;
			el.items = std::move(tmp.items);
			return true;
		}
		if ((vr_is_numeric(dv) || dv == VR_AT) && vl % (dv == VR_AT ? 4 : vr_word_size(dv)))
			return false;
		el.vr = dv;
		el.value.assign(reinterpret_cast<const char *>(p_ + pos), vl);
		return true;
	}

	void parse_sequence(size_t &pos, size_t end, bool undef, Element &el, bool implicit_inside)
	{
		if (++depth_ > MAX_DEPTH)
			fail(DIANA_EDICOM, "sequences nested deeper than %d levels", MAX_DEPTH);
		bool save_explicit = explicit_, save_be = be_;
		if (implicit_inside) {
			explicit_ = false;
			be_ = false;
		}
		for (;;) {
			if (!undef && pos == end)
				break;
			if (end - pos < 8)
				truncated(end, el.tag);
			uint32_t t = rtag(pos);
			uint32_t l = r32(pos + 4);
			if (t == TAG_SEQ_DELIM) {
				if (!undef)
					fail(DIANA_EDICOM, "sequence delimiter inside sequence (%04X,%04X) of defined length",
					     el.tag >> 16, el.tag & 0xFFFF);
				if (l != 0 && !o_.lenient)
					fail(DIANA_EDICOM, "sequence delimiter with a non-zero length at offset %zu", pos);
				pos += 8;
				break;
			}
			if (t != TAG_ITEM)
				fail(DIANA_EDICOM, "sequence (%04X,%04X) holds (%04X,%04X) where an item was expected",
				     el.tag >> 16, el.tag & 0xFFFF, t >> 16, t & 0xFFFF);
			pos += 8;
			Item it;
			if (l == UNDEFINED_LENGTH) {
				it.undef_len = true;
				parse_elements(pos, end, true, it, false, el.tag);
			} else {
				if (l > end - pos)
					truncated(end, el.tag);
				parse_elements(pos, pos + l, false, it, false, el.tag);
			}
			el.items.push_back(std::move(it));
		}
		explicit_ = save_explicit;
		be_ = save_be;
		depth_--;
	}

	void parse_fragments(size_t &pos, size_t limit, Element &el)
	{
		el.encapsulated = true;
		el.undef_len = true;
		for (;;) {
			if (limit - pos < 8)
				truncated(limit, el.tag);
			uint32_t t = rtag(pos);
			uint32_t l = r32(pos + 4);
			if (t == TAG_SEQ_DELIM) {
				pos += 8;
				break;
			}
			if (t != TAG_ITEM || l == UNDEFINED_LENGTH)
				fail(DIANA_EDICOM, "invalid item (%04X,%04X) in encapsulated pixel data at offset %zu",
				     t >> 16, t & 0xFFFF, pos);
			pos += 8;
			if (l > limit - pos)
				truncated(limit, el.tag);
			el.frags.emplace_back(reinterpret_cast<const char *>(p_ + pos), l);
			pos += l;
		}
		if (el.frags.empty() && !o_.lenient)
			fail(DIANA_EDICOM, "encapsulated pixel data lacks its basic offset table item");
	}

	int depth_ = 0;

private:
	const uint8_t *p_;
	size_t n_;
	ParseOptions o_;
};

std::string trimmed_uid(const Element *e)
{
	if (!e)
		return std::string();
	std::string s = e->value;
	while (!s.empty() && (s.back() == '\0' || s.back() == ' '))
		s.pop_back();
	size_t b = 0;
	while (b < s.size() && s[b] == ' ')
		b++;
	return s.substr(b);
}

void validate_values(const Item &it)
{
	for (const Element &el : it.elems) {
		if (el.vr == VR_SQ) {
			for (const Item &sub : el.items)
				validate_values(sub);
			continue;
		}
		if (el.vr != VR_IS && el.vr != VR_DS && el.vr != VR_UI)
			continue;
		for (const std::string &v : split_values(el.value)) {
			bool ok = el.vr == VR_IS ? valid_is(v) : el.vr == VR_DS ? valid_ds(v) : valid_ui(v);
			if (!ok)
				fail(DIANA_EDICOM, "element (%04X,%04X) holds an invalid %s value",
				     el.tag >> 16, el.tag & 0xFFFF, vr_str(el.vr).c_str());
		}
	}
}

std::string inflate_all(const uint8_t *p, size_t n, uint64_t cap, bool lenient)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		/* raw deflate as PS3.5 A.5 says; some writers add a zlib header (lenient) */
		if (attempt == 1 && !lenient)
			break;
		z_stream zs;
		memset(&zs, 0, sizeof zs);
		if (inflateInit2(&zs, attempt == 0 ? -MAX_WBITS : MAX_WBITS) != Z_OK)
			throw std::bad_alloc();
		std::string out;
		char buf[65536];
		size_t done = 0;
		int rc = Z_OK;
		while (rc == Z_OK) {
			size_t chunk = n - done > 1u << 30 ? 1u << 30 : n - done;
			zs.next_in = const_cast<Bytef *>(p + done);
			zs.avail_in = static_cast<uInt>(chunk);
			zs.next_out = reinterpret_cast<Bytef *>(buf);
			zs.avail_out = sizeof buf;
			rc = inflate(&zs, Z_NO_FLUSH);
			done += chunk - zs.avail_in;
			out.append(buf, sizeof buf - zs.avail_out);
			if (cap && out.size() > cap) {
				inflateEnd(&zs);
				fail(DIANA_EINVAL, "inflated dataset larger than the limit of %llu bytes",
				     static_cast<unsigned long long>(cap));
			}
			if (rc == Z_BUF_ERROR && done == n && zs.avail_out != 0)
				break; /* input exhausted before the end of the stream */
			if (rc == Z_BUF_ERROR)
				rc = Z_OK;
		}
		inflateEnd(&zs);
		if (rc == Z_STREAM_END)
			return out;
		if (rc == Z_MEM_ERROR)
			throw std::bad_alloc();
	}
	fail(DIANA_EDICOM, "deflated dataset is corrupt or truncated");
}

Encoding detect(const uint8_t *p, size_t n, size_t pos)
{
	if (n - pos < 8)
		return Encoding::ExplicitLE;
	uint16_t v = vr2(static_cast<char>(p[pos + 4]), static_cast<char>(p[pos + 5]));
	if (!vr_known(v))
		return Encoding::ImplicitLE;
	uint16_t gle = le16(p + pos), gbe = be16(p + pos);
	return (gbe < gle) ? Encoding::ExplicitBE : Encoding::ExplicitLE;
}

const char *encoding_ts(Encoding e)
{
	switch (e) {
	case Encoding::ImplicitLE: return TS_IMPLICIT_LE;
	case Encoding::ExplicitBE: return TS_EXPLICIT_BE;
	case Encoding::DeflatedLE: return TS_DEFLATED_LE;
	default: return TS_EXPLICIT_LE;
	}
}

} // namespace

void parse(const uint8_t *data, size_t len, const ParseOptions &opts, Dataset &out)
{
	Parser ps(data, len, opts);
	size_t pos = 0;
	bool part10 = false;

	if (opts.partial && len < 132)
		throw NeedMore();
	if (len >= 132 && memcmp(data + 128, "DICM", 4) == 0) {
		pos = 132;
		part10 = true;
	} else if (opts.lenient && len >= 4 && memcmp(data, "DICM", 4) == 0) {
		pos = 4; /* file meta without preamble, "DICM" kept */
		part10 = true;
	} else if (opts.lenient && len >= 8 && le16(data) == 0x0002 &&
	           vr_known(vr2(static_cast<char>(data[4]), static_cast<char>(data[5])))) {
		part10 = true; /* file meta without preamble nor "DICM" */
	}

	if (part10) {
		Item meta;
		out.has_meta = true;
		ps.explicit_ = true;
		ps.be_ = false;
		while (pos < len) {
			if (len - pos < 8)
				ps.truncated(len, 0x00020000);
			if (le16(data + pos) != 0x0002)
				break;
			uint32_t tag = ps.rtag(pos);
			Element el;
			ps.parse_element(pos, len, el, meta);
			if (el.vr == VR_SQ || el.encapsulated)
				fail(DIANA_EDICOM, "file meta element (%04X,%04X) has an undefined length",
				     tag >> 16, tag & 0xFFFF);
			if (!meta.insert(std::move(el)))
				fail(DIANA_EDICOM, "duplicate file meta element (%04X,%04X)", tag >> 16, tag & 0xFFFF);
		}
		if (opts.partial && pos == len)
			throw NeedMore();
		out.meta = std::move(meta.elems);
		if (!opts.lenient) {
			if (trimmed_uid(out.find_meta(0x00020010)).empty())
				fail(DIANA_EDICOM, "file meta lacks the Transfer Syntax UID (0002,0010)");
			/* Files written before PS3.10 settled may carry a minimal meta
			 * with neither Media Storage UID (the dataset's (0008,0016) and
			 * (0008,0018) then identify the instance); a meta that names
			 * the instance but not its class has lost an element. */
			bool has_class = !trimmed_uid(out.find_meta(0x00020002)).empty();
			bool has_inst = !trimmed_uid(out.find_meta(0x00020003)).empty();
			if (has_inst && !has_class)
				fail(DIANA_EDICOM, "file meta lacks the Media Storage SOP Class UID (0002,0002)");
			if (has_class && !has_inst)
				fail(DIANA_EDICOM, "file meta lacks the Media Storage SOP Instance UID (0002,0003)");
		}
	}

	std::string ts = trimmed_uid(out.find_meta(0x00020010));
	Encoding enc;
	if (!ts.empty()) {
		if (!ts_encoding(ts, &enc))
			fail(DIANA_EDICOM, "unsupported transfer syntax in file meta (0002,0010)");
	} else {
		if (pos == len && !part10)
			fail(DIANA_EDICOM, "input is empty");
		enc = detect(data, len, pos);
		ts = encoding_ts(enc);
		if (!part10) {
			/* a raw dataset (no preamble, no file meta) must look like one */
			uint16_t g = enc == Encoding::ExplicitBE ? be16(data) : le16(data);
			if (len < 8 || g != 0x0008)
				fail(DIANA_EDICOM, "not DICOM: no file meta, and the data does not begin with a group 0008 element");
		}
	}
	out.ts = ts;
	out.enc = enc;

	std::string inflated;
	const uint8_t *body = data + pos;
	size_t body_len = len - pos;
	if (enc == Encoding::DeflatedLE) {
		if (opts.partial)
			throw NeedMore();
		inflated = inflate_all(body, body_len, opts.max_inflated ? opts.max_inflated : (2ull << 30),
		                       opts.lenient);
		body = reinterpret_cast<const uint8_t *>(inflated.data());
		body_len = inflated.size();
	}
	ParseOptions bo = opts;
	if (enc == Encoding::DeflatedLE)
		bo.partial = false;
	Parser bp(body, body_len, bo);
	bp.explicit_ = enc != Encoding::ImplicitLE;
	bp.be_ = enc == Encoding::ExplicitBE;
	bp.root_ = &out.root;
	size_t bpos = 0;
	bp.parse_elements(bpos, body_len, false, out.root, true, 0);
	if (bo.partial && !bp.stopped_)
		throw NeedMore(); /* the prefix ended on an element boundary: read on */
	out.pixels_skipped = bp.stopped_;

	if (opts.lenient) {
		out.lenient = true;
	} else {
		Item meta_item;
		meta_item.elems = out.meta;
		validate_values(meta_item);
		validate_values(out.root);
	}
}

} // namespace diana_dcm
