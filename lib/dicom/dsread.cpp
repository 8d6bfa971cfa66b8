/*
 * libdiana - DICOM reader: GDCM parses, libdiana checks, the result becomes
 * the model of dsmodel.h.
 *
 * GDCM does the byte-level work: gdcm::Preamble and group 0002 elements read
 * as gdcm::ExplicitDataElement (the file meta, into a gdcm::FileMetaInformation),
 * gdcm::FileMetaInformation::ReadCompat (encoding of a raw dataset), and
 * gdcm::DataElement::ReadPreValue/ReadValue over gdcm::ExplicitDataElement or
 * gdcm::ImplicitDataElement (the dataset; sequences, items and fragments are
 * GDCM's recursive readers). The top-level loop is ours rather than
 * gdcm::DataSet::Read / ReadUpToTag because it needs each element's offset:
 * to account for its bytes, to stop before Pixel Data, and to retry an
 * element after a lenient repair. gdcm::Reader is not used: it refuses
 * transfer syntaxes it does not know (HTJ2K, Deflated Image Frame
 * Compression...), where ts_encoding() knows that a standard transfer syntax
 * only names a pixel codec; and it switches to other encodings when one does
 * not parse. gdcm::FileMetaInformation::Read is not used either: Debian's
 * libgdcm keeps its assert()s, and a truncated file meta aborts the process
 * there (verified with GDCM 3.0.21).
 *
 * GDCM repairs some defects while reading (changes lengths, skips bytes,
 * byte-swaps items) and reports most of them on its trace streams only.
 * What libdiana checks, so that a repaired file is refused rather than
 * silently accepted:
 *  - as GDCM reads each tag and value length (dsgdcm.h specialisations):
 *    the length against the bytes that remain and against the enclosing
 *    item or sequence of defined length, before GDCM allocates it; VR bytes
 *    GDCM maps to UN; delimiters with a non-zero length; byte-swapped item
 *    tags; stack depth of GDCM's recursion;
 *  - GDCM's warnings and errors on this thread (gdcm_trace.cpp);
 *  - after each top-level element: the bytes GDCM consumed equal the size of
 *    what it returned (a skipped byte, a dropped duplicate or a changed
 *    length shows there), and the element is not a duplicate;
 *  - on the converted model: VR validity, IS/DS/UI syntax (strict), file
 *    meta rules (strict), nesting depth, a raw dataset starting with group
 *    0008, all input consumed (a few zero bytes of padding aside).
 * Errors are one line naming tags and offsets, never values.
 * SPDX-License-Identifier: MIT
 */
#include "dsgdcm.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include <pthread.h>
#include <unistd.h>
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
constexpr unsigned MAX_PATCHES = 64;
constexpr uint32_t BIG_VALUE = 64 * 1024;

/* Raised from inside GDCM's reading code. Deliberately not derived from
 * std::exception: GDCM catches std::exception and gdcm::Exception in places
 * to repair what it read; these must reach the reader unchanged. */
struct Stop {
	int code;
	std::string msg;
};
struct ShortRead {};             /* a read beyond the end of the input */
struct NonStandardVR {           /* VR bytes GDCM read as UN */
	uint64_t pos;            /* of the VR bytes */
	uint32_t tag;
};

[[noreturn]] __attribute__((format(printf, 2, 3))) void stop(int code, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	throw Stop{ code, buf };
}

unsigned long long ull(uint64_t v)
{
	return static_cast<unsigned long long>(v);
}

/* ------------------------------------------------------------------------ */
/* input                                                                      */
/* ------------------------------------------------------------------------ */

/* The bytes GDCM reads: memory (borrowed, or owned), or a file read as GDCM
 * asks for bytes: headers through a small window, large values straight into
 * GDCM's buffer (so that DIANA_OPEN_SKIP_PIXELS reads only the header, and
 * no copy of the whole file is made). Any read beyond the end throws
 * ShortRead; seeking beyond it fails. */
class InBuf : public std::streambuf {
public:
	InBuf(const char *p, size_t n) : mem_(p), size_(n) { setmem(0); }
	explicit InBuf(std::string &&s) : own_(std::move(s))
	{
		mem_ = own_.data();
		size_ = own_.size();
		setmem(0);
	}
	InBuf(int fd, uint64_t size) : size_(size), fd_(fd) { setg(nullptr, nullptr, nullptr); }
	InBuf(const InBuf &) = delete;
	InBuf &operator=(const InBuf &) = delete;

	uint64_t size() const { return size_; }
	uint64_t tell() const { return base_ + static_cast<uint64_t>(gptr() - eback()); }
	bool file_backed() const { return fd_ >= 0; }

	/* `n` bytes at `pos`, loaded as needed (the read position is kept);
	 * nullptr beyond the end */
	const char *at(uint64_t pos, uint64_t n)
	{
		if (pos > size_ || n > size_ - pos)
			return nullptr;
		if (fd_ < 0)
			return mem_ + pos;
		uint64_t wend = base_ + static_cast<uint64_t>(egptr() - eback());
		if (pos >= base_ && pos + n <= wend)
			return eback() + (pos - base_);
		uint64_t cur = tell();
		uint64_t start = std::min(pos, cur), end = std::max(pos + n, cur);
		end = std::max(end, std::min(size_, start + WINDOW));
		window(start, end, cur);
		return eback() + (pos - start);
	}

	/* the next `n` bytes, into `out` (a large value) */
	void read_into(std::string &out, uint64_t n)
	{
		uint64_t pos = tell();
		if (n > size_ - pos)
			throw ShortRead();
		if (fd_ < 0) {
			out.assign(mem_ + pos, static_cast<size_t>(n));
			setmem(pos + n);
			return;
		}
		out.resize(static_cast<size_t>(n));
		xsgetn(&out[0], static_cast<std::streamsize>(n));
	}

	/* change two bytes of the input (lenient repair of a VR) */
	void patch(uint64_t pos, char a, char b)
	{
		if (fd_ >= 0) {
			patches_.push_back(Patch{ pos, { a, b } });
			uint64_t wend = base_ + static_cast<uint64_t>(egptr() - eback());
			for (uint64_t i = 0; i < 2; i++)
				if (pos + i >= base_ && pos + i < wend)
					eback()[pos + i - base_] = i ? b : a;
			return;
		}
		if (own_.data() != mem_) {
			uint64_t p = tell();
			own_.assign(mem_, size_);
			mem_ = own_.data();
			setmem(p);
		}
		own_[pos] = a;
		own_[pos + 1] = b;
	}

protected:
	std::streamsize xsgetn(char *s, std::streamsize n) override
	{
		if (n <= 0)
			return 0;
		uint64_t pos = tell(), want = static_cast<uint64_t>(n);
		if (want > size_ - pos)
			throw ShortRead();
		uint64_t take = std::min<uint64_t>(want, static_cast<uint64_t>(egptr() - gptr()));
		if (take)
			memcpy(s, gptr(), static_cast<size_t>(take));
		setg(eback(), gptr() + take, egptr());
		if (take == want)
			return n;
		/* a file, and the window is used up */
		uint64_t p = pos + take, rest = want - take;
		if (rest >= WINDOW) {
			read_at(s + take, rest, p);
			base_ = p + rest;
			setg(win_.get(), win_.get(), win_.get());
			return n;
		}
		window(p, std::min(size_, p + WINDOW), p);
		memcpy(s + take, gptr(), static_cast<size_t>(rest));
		setg(eback(), gptr() + rest, egptr());
		return n;
	}

	int_type underflow() override
	{
		uint64_t pos = tell();
		if (fd_ < 0 || pos >= size_)
			throw ShortRead();
		window(pos, std::min(size_, pos + WINDOW), pos);
		return traits_type::to_int_type(*gptr());
	}

	pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override
	{
		if (!(which & std::ios_base::in))
			return pos_type(off_type(-1));
		int64_t from = dir == std::ios_base::beg ? 0
		               : dir == std::ios_base::cur ? static_cast<int64_t>(tell())
		                                           : static_cast<int64_t>(size_);
		int64_t np = from + off;
		if (np < 0 || static_cast<uint64_t>(np) > size_)
			return pos_type(off_type(-1));
		uint64_t u = static_cast<uint64_t>(np);
		if (fd_ < 0) {
			setmem(u);
		} else if (u >= base_ && u <= base_ + static_cast<uint64_t>(egptr() - eback())) {
			setg(eback(), eback() + (u - base_), egptr());
		} else {
			base_ = u;
			setg(win_.get(), win_.get(), win_.get());
		}
		return pos_type(np);
	}

	pos_type seekpos(pos_type p, std::ios_base::openmode which) override
	{
		return seekoff(off_type(p), std::ios_base::beg, which);
	}

private:
	/* bytes read ahead: a header, for most files (pixel data is read
	 * straight, or left in the file) */
	static constexpr uint64_t WINDOW = 16 * 1024;

	struct Patch {
		uint64_t pos;
		char b[2];
	};

	void setmem(uint64_t p)
	{
		char *b = const_cast<char *>(mem_);
		setg(b, b + p, b + size_);
	}

	/* file bytes [start, end) into the window, read position `cur` */
	void window(uint64_t start, uint64_t end, uint64_t cur)
	{
		uint64_t len = end - start;
		/* the get area becomes empty first: a failed read leaves no stale window */
		uint64_t p = tell();
		base_ = p;
		setg(win_.get(), win_.get(), win_.get());
		if (len > cap_) {
			win_.reset();
			cap_ = 0;
			win_.reset(new char[static_cast<size_t>(len)]);
			cap_ = len;
			setg(win_.get(), win_.get(), win_.get());
		}
		read_at(win_.get(), len, start);
		base_ = start;
		setg(win_.get(), win_.get() + (cur - start), win_.get() + len);
	}

	void read_at(char *dst, uint64_t len, uint64_t off)
	{
		uint64_t done = 0;
		while (done < len) {
			ssize_t r = pread(fd_, dst + done, static_cast<size_t>(std::min<uint64_t>(len - done, 1u << 30)),
			                  static_cast<off_t>(off + done));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				int e = errno;
				stop(diana__errno_code(e), "cannot read file: %s", strerror(e));
			}
			if (r == 0)
				throw ShortRead(); /* the file shrank */
			done += static_cast<uint64_t>(r);
		}
		for (const Patch &pt : patches_)
			for (uint64_t i = 0; i < 2; i++)
				if (pt.pos + i >= off && pt.pos + i < off + len)
					dst[pt.pos + i - off] = pt.b[i];
	}

	std::string own_;
	const char *mem_ = nullptr;
	uint64_t base_ = 0, size_ = 0, cap_ = 0;
	int fd_ = -1;
	std::unique_ptr<char[]> win_;
	std::vector<Patch> patches_;
};

/* ------------------------------------------------------------------------ */
/* checks as GDCM reads (the dsgdcm.h specialisations call these)             */
/* ------------------------------------------------------------------------ */

struct Frame {
	uint64_t end;  /* defined length: offset after the last byte */
	bool defined;
	bool item;     /* item (or fragment); else sequence (or fragments) */
};

struct Ctx {
	InBuf *sb = nullptr;
	bool lenient = false;
	uint32_t last_tag = 0;
	uint64_t last_tag_pos = 0;
	std::vector<Frame> frames;     /* the items and sequences being read */
	unsigned long own_expected = 0;
	unsigned long *expected = &own_expected; /* GDCM reports that are accepted */
	const char *where = "";        /* message prefix inside a value */
};

thread_local Ctx *t_ctx;

class CtxScope {
public:
	explicit CtxScope(Ctx *c) : saved_(t_ctx) { t_ctx = c; }
	~CtxScope() { t_ctx = saved_; }
	CtxScope(const CtxScope &) = delete;
	CtxScope &operator=(const CtxScope &) = delete;

private:
	Ctx *saved_;
};

void pop_frames(Ctx &c, uint64_t pos)
{
	while (!c.frames.empty() && c.frames.back().defined && c.frames.back().end <= pos)
		c.frames.pop_back();
}

/* GDCM reported a defect (and repaired it): stop where it happened */
void check_reports(Ctx &c)
{
	const TraceCapture &t = trace_current();
	if (t.count > *c.expected)
		stop(DIANA_EDICOM, "%sGDCM repaired the data: %s", c.where, t.first.c_str());
}

void check_stack(Ctx &c)
{
	if (stack_exhausted())
		stop(DIANA_EDICOM, "%ssequences nested too deeply to be read", c.where);
}

void hook_tag(std::istream &is, const gdcm::Tag &t, uint64_t pos)
{
	Ctx *c = t_ctx;
	if (!c || is.rdbuf() != c->sb)
		return;
	uint32_t tag = (static_cast<uint32_t>(t.GetGroup()) << 16) | t.GetElement();
	check_reports(*c);
	c->last_tag = tag;
	c->last_tag_pos = pos;
	pop_frames(*c, pos);
	if (tag == TAG_ITEM_DELIM && !c->frames.empty() && !c->frames.back().defined && c->frames.back().item)
		c->frames.pop_back();
	else if (tag == TAG_SEQ_DELIM && !c->frames.empty() && !c->frames.back().defined && !c->frames.back().item)
		c->frames.pop_back();
	/* GDCM reads these as items of byte-swapped private sequences (a
	 * Philips defect), through code paths that bypass these checks */
	if (tag == 0xFEFF00E0u || tag == 0xFEFFDDE0u || tag == 0xFEFF0DE0u)
		stop(DIANA_EDICOM, "%sbyte-swapped item tag (%04X,%04X) at offset %llu", c->where, tag >> 16,
		     tag & 0xFFFF, ull(pos));
}

/* GDCM computes the length of what it reads inside a sequence or item of
 * defined length by walking it, in time exponential in the number of
 * sequences of undefined length it descends into (its walk is compiled with
 * assertions that repeat it): bound that nesting */
constexpr size_t MAX_WALKED_FRAMES = 12; /* 6 sequences and their items */

void check_walk(Ctx &c)
{
	size_t undef = 0;
	for (auto it = c.frames.rbegin(); it != c.frames.rend(); ++it) {
		if (it->defined) {
			if (undef > MAX_WALKED_FRAMES)
				stop(DIANA_EDICOM, "%ssequences of undefined length nested more than %zu levels "
				     "inside one of defined length", c.where, MAX_WALKED_FRAMES / 2);
			return;
		}
		undef++;
	}
}

/* value lengths inside a sequence of defined length, or below an item or
 * sequence of undefined length inside one, are summed by GDCM code compiled
 * with assertions that they are even: refuse odd ones there */
bool odd_length_safe(const std::vector<Frame> &f)
{
	for (size_t i = 0; i + 1 < f.size(); i++)
		if (f[i].defined)
			return false;
	return f.empty() || !f.back().defined || f.back().item;
}

void hook_vl(std::istream &is, uint32_t &vl, bool wide)
{
	Ctx *c = t_ctx;
	if (!c || is.rdbuf() != c->sb)
		return;
	check_stack(*c);
	uint64_t pos = c->sb->tell();
	uint32_t tag = c->last_tag;
	uint64_t hdr = pos - c->last_tag_pos;

	if (tag == TAG_ITEM_DELIM || tag == TAG_SEQ_DELIM) {
		if (vl != 0) {
			if (!c->lenient)
				stop(DIANA_EDICOM, "%s%s delimiter with a non-zero length at offset %llu", c->where,
				     tag == TAG_ITEM_DELIM ? "item" : "sequence", ull(c->last_tag_pos));
			vl = 0; /* PS3.5 7.5: the length is 0; read it as such */
		}
		return;
	}
	bool item = tag == TAG_ITEM;
	bool sq = false;
	if (wide && hdr == 12) {
		/* explicit VR with a 4-byte length: GDCM reads any VR it does not
		 * know as UN; look at the bytes it read */
		const char *v = c->sb->at(c->last_tag_pos + 4, 2);
		uint16_t vr = vr2(v[0], v[1]);
		if (!vr_known(vr))
			throw NonStandardVR{ c->last_tag_pos + 4, tag };
		sq = vr == VR_SQ;
		if (vl == UNDEFINED_LENGTH && tag == TAG_PIXEL_DATA && vr != VR_OB && vr != VR_OW)
			stop(DIANA_EDICOM, "%sencapsulated pixel data with VR %s", c->where, vr_str(vr).c_str());
		if (vl == UNDEFINED_LENGTH && tag != TAG_PIXEL_DATA && !sq && vr != VR_UN)
			stop(DIANA_EDICOM, "%selement (%04X,%04X) with VR %s has an undefined length", c->where,
			     tag >> 16, tag & 0xFFFF, vr_str(vr).c_str());
		if (vl == UNDEFINED_LENGTH && (sq || vr == VR_UN || tag == TAG_PIXEL_DATA)) {
			c->frames.push_back(Frame{ 0, false, false });
			check_walk(*c);
		}
		if (vl == UNDEFINED_LENGTH)
			return;
	} else if (vl == UNDEFINED_LENGTH) {
		/* implicit VR element, or item */
		if (tag == TAG_PIXEL_DATA && !item) {
			if (!c->lenient)
				stop(DIANA_EDICOM, "%sencapsulated pixel data in an implicit VR dataset", c->where);
			(*c->expected)++; /* GDCM says "Undefined value length is impossible" */
		}
		c->frames.push_back(Frame{ 0, false, item });
		check_walk(*c);
		return;
	}
	if (vl > c->sb->size() - pos)
		stop(DIANA_EDICOM, "%sdata ends inside element (%04X,%04X): input truncated", c->where, tag >> 16,
		     tag & 0xFFFF);
	for (auto it = c->frames.rbegin(); it != c->frames.rend(); ++it)
		if (it->defined) {
			if (pos > it->end || vl > it->end - pos)
				stop(DIANA_EDICOM, "%selement (%04X,%04X) overruns its enclosing item or sequence",
				     c->where, tag >> 16, tag & 0xFFFF);
			break;
		}
	if ((vl & 1) && !odd_length_safe(c->frames))
		stop(DIANA_EDICOM, "%selement (%04X,%04X) has an odd length inside a sequence of defined length",
		     c->where, tag >> 16, tag & 0xFFFF);
	if (item || sq)
		c->frames.push_back(Frame{ pos + vl, true, item });
}

uint64_t hook_pos(std::istream &is)
{
	Ctx *c = t_ctx;
	if (c && is.rdbuf() == c->sb)
		return c->sb->tell();
	return 0;
}

} // namespace
} // namespace diana_dcm

/* GDCM's own bodies (gdcmTag.h, gdcmVL.h) plus the hooks above */
namespace gdcm {

template <> std::istream &Tag::Read<diana_dcm::SwapLE>(std::istream &is)
{
	uint64_t pos = diana_dcm::hook_pos(is);
	if (is.read(ElementTag.bytes, 4))
		diana_dcm::SwapLE::SwapArray(ElementTag.tags, 2);
	diana_dcm::hook_tag(is, *this, pos);
	return is;
}

template <> std::istream &Tag::Read<diana_dcm::SwapBE>(std::istream &is)
{
	uint64_t pos = diana_dcm::hook_pos(is);
	if (is.read(ElementTag.bytes, 4))
		diana_dcm::SwapBE::SwapArray(ElementTag.tags, 2);
	diana_dcm::hook_tag(is, *this, pos);
	return is;
}

template <> std::istream &VL::Read<diana_dcm::SwapLE>(std::istream &is)
{
	is.read(reinterpret_cast<char *>(&ValueLength), sizeof(uint32_t));
	diana_dcm::SwapLE::SwapArray(&ValueLength, 1);
	diana_dcm::hook_vl(is, ValueLength, true);
	return is;
}

template <> std::istream &VL::Read<diana_dcm::SwapBE>(std::istream &is)
{
	is.read(reinterpret_cast<char *>(&ValueLength), sizeof(uint32_t));
	diana_dcm::SwapBE::SwapArray(&ValueLength, 1);
	diana_dcm::hook_vl(is, ValueLength, true);
	return is;
}

template <> std::istream &VL::Read16<diana_dcm::SwapLE>(std::istream &is)
{
	uint16_t copy;
	is.read(reinterpret_cast<char *>(&copy), sizeof(uint16_t));
	diana_dcm::SwapLE::SwapArray(&copy, 1);
	ValueLength = copy;
	diana_dcm::hook_vl(is, ValueLength, false);
	return is;
}

template <> std::istream &VL::Read16<diana_dcm::SwapBE>(std::istream &is)
{
	uint16_t copy;
	is.read(reinterpret_cast<char *>(&copy), sizeof(uint16_t));
	diana_dcm::SwapBE::SwapArray(&copy, 1);
	ValueLength = copy;
	diana_dcm::hook_vl(is, ValueLength, false);
	return is;
}

} // namespace gdcm

namespace diana_dcm {
namespace {

/* ------------------------------------------------------------------------ */
/* errors                                                                     */
/* ------------------------------------------------------------------------ */

bool printable(char c)
{
	return c >= 0x20 && c < 0x7F;
}

/* Rethrow the exception being handled as a Stop (NonStandardVR and
 * std::bad_alloc pass through): GDCM's exceptions and ours, with the tag and
 * offset GDCM was reading. */
[[noreturn]] void rethrow_as_stop(Ctx &c)
{
	uint32_t tag = c.last_tag;
	unsigned g = tag >> 16, e = tag & 0xFFFF;
	try {
		throw;
	} catch (const Stop &) {
		throw;
	} catch (const NonStandardVR &) {
		throw;
	} catch (const std::bad_alloc &) {
		throw;
	} catch (const Error &) {
		throw;
	} catch (const ShortRead &) {
		stop(DIANA_EDICOM, "%sdata ends inside element (%04X,%04X): input truncated", c.where, g, e);
	} catch (const gdcm::ParseException &) {
		const char *v = c.sb->at(c.last_tag_pos + 4, 2);
		if (v && !vr_known(vr2(v[0], v[1])) && g != 0xFFFE) {
			if (printable(v[0]) && printable(v[1]))
				stop(DIANA_EDICOM, "%selement (%04X,%04X) has a non-standard VR (bytes %02X %02X)", c.where,
				     g, e, static_cast<uint8_t>(v[0]), static_cast<uint8_t>(v[1]));
			stop(DIANA_EDICOM,
			     "%selement (%04X,%04X) at offset %llu has no VR (bytes %02X %02X): "
			     "the data is not encoded as its transfer syntax says",
			     c.where, g, e, ull(c.last_tag_pos), static_cast<uint8_t>(v[0]), static_cast<uint8_t>(v[1]));
		}
		stop(DIANA_EDICOM, "%sunexpected (%04X,%04X) at offset %llu", c.where, g, e, ull(c.last_tag_pos));
	} catch (const gdcm::Exception &ex) {
		const char *d = ex.GetDescription();
		if (d && !strcmp(d, "Impossible to allocate"))
			throw std::bad_alloc();
		stop(DIANA_EDICOM, "%scannot read (%04X,%04X) at offset %llu (GDCM: %.60s)", c.where, g, e,
		     ull(c.last_tag_pos), d ? d : "");
	} catch (const std::exception &) {
		stop(DIANA_EDICOM, "%scannot read (%04X,%04X) at offset %llu", c.where, g, e, ull(c.last_tag_pos));
	} catch (const char *s) {
		stop(DIANA_EDICOM, "%scannot read (%04X,%04X) at offset %llu (GDCM: %.60s)", c.where, g, e,
		     ull(c.last_tag_pos), s);
	} catch (...) {
		stop(DIANA_EDICOM, "%scannot read (%04X,%04X) at offset %llu", c.where, g, e, ull(c.last_tag_pos));
	}
}

/* ------------------------------------------------------------------------ */
/* sizes of what GDCM read, in the encoding it was read from                  */
/* ------------------------------------------------------------------------ */

uint64_t encoded_size(const gdcm::DataSet &ds, bool expl);

const gdcm::SequenceOfItems *items_of(const gdcm::DataElement &de)
{
	/* as GDCM's IsEmpty() then a dynamic_cast: a sequence is never empty
	 * in GDCM's sense (only an empty ByteValue is) */
	return value_items(element_value(de));
}

uint64_t items_size(const gdcm::SequenceOfItems &sq, bool expl)
{
	uint64_t n = 0;
	for (auto it = sq.Begin(); it != sq.End(); ++it) {
		n += 8 + encoded_size(it->GetNestedDataSet(), expl);
		if (it->GetVL().IsUndefined())
			n += 8;
	}
	if (sq.GetLength().IsUndefined())
		n += 8;
	return n;
}

uint64_t value_size(const gdcm::DataElement &de, bool expl)
{
	if (const gdcm::SequenceOfItems *sq = items_of(de)) {
		/* UN of undefined length: implicit VR inside (CP-246) */
		bool inner = expl && de.GetVR() != gdcm::VR::UN;
		return items_size(*sq, inner);
	}
	if (const gdcm::SequenceOfFragments *sf = value_fragments(element_value(de))) {
		uint64_t n = 8 + static_cast<uint32_t>(sf->GetTable().GetVL()) + 8;
		for (size_t i = 0; i < sf->GetNumberOfFragments(); i++)
			n += 8 + static_cast<uint32_t>(sf->GetFragment(i).GetVL());
		return n;
	}
	if (const gdcm::ByteValue *bv = value_bytes(element_value(de)))
		return static_cast<uint32_t>(bv->GetLength());
	return 0;
}

uint64_t element_size(const gdcm::DataElement &de, bool expl)
{
	uint64_t hdr = 8;
	if (expl && (de.GetVR() & gdcm::VR::VL32))
		hdr = 12;
	return hdr + value_size(de, expl);
}

uint64_t encoded_size(const gdcm::DataSet &ds, bool expl)
{
	uint64_t n = 0;
	for (const gdcm::DataElement &de : ds.GetDES())
		n += element_size(de, expl);
	return n;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                    */
/* ------------------------------------------------------------------------ */

uint16_t pixel_rep_of(const gdcm::DataSet &ds, uint16_t dflt)
{
	const gdcm::DataElement &de = ds.GetDataElement(gdcm::Tag(0x0028, 0x0103));
	const gdcm::ByteValue *bv = value_bytes(element_value(de));
	if (de.GetTag() == gdcm::Tag(0x0028, 0x0103) && bv && bv->GetLength() >= 2) {
		/* read by read_body: bytes in an ExternalValue, not in GDCM's buffer */
		const ExternalValue *ext = value_external(bv);
		uint16_t v;
		memcpy(&v, ext ? ext->data() : bv->GetPointer(), 2);
		return v;
	}
	return dflt;
}

/* A non-standard VR: refused, or (lenient) replaced in the input by the
 * dictionary VR when that has a 2-byte length, as DCMTK reads such data. */
void non_standard_vr(Ctx &c, const NonStandardVR &n, unsigned &patches, uint16_t pixel_rep)
{
	const char *v = c.sb->at(n.pos, 2);
	unsigned a = static_cast<uint8_t>(v[0]), b = static_cast<uint8_t>(v[1]);
	if (!c.lenient)
		stop(DIANA_EDICOM, "%selement (%04X,%04X) has a non-standard VR (bytes %02X %02X)", c.where,
		     n.tag >> 16, n.tag & 0xFFFF, a, b);
	uint16_t dv = dict_vr(n.tag, pixel_rep);
	if (dv == VR_UN || vr_long_form(dv) || ++patches > MAX_PATCHES)
		stop(DIANA_EDICOM, "%selement (%04X,%04X) has a non-standard VR (bytes %02X %02X) "
		     "and no dictionary VR with a 2-byte length", c.where, n.tag >> 16, n.tag & 0xFFFF, a, b);
	c.sb->patch(n.pos, static_cast<char>(dv >> 8), static_cast<char>(dv & 0xFF));
}

bool zeros(InBuf &sb, uint64_t pos, uint64_t end)
{
	const char *p = sb.at(pos, end - pos);
	if (!p)
		return false;
	for (uint64_t i = 0; i < end - pos; i++)
		if (p[i])
			return false;
	return true;
}

void read_meta(Ctx &c, std::istream &is, gdcm::FileMetaInformation &fmi)
{
	unsigned patches = 0;
	for (;;) {
		uint64_t pos = c.sb->tell();
		if (pos == c.sb->size())
			break;
		if (c.sb->size() - pos < 8)
			stop(DIANA_EDICOM, "data ends inside element (0002,0000): input truncated");
		gdcm::Tag t;
		gdcm::DataElement de;
		try {
			t.Read<SwapLE>(is);
			is.seekg(static_cast<std::streamoff>(pos));
			if (t.GetGroup() != 0x0002)
				break;
			c.frames.clear();
			de.ReadPreValue<gdcm::ExplicitDataElement, SwapLE>(is, {});
			if (de.GetVR() == gdcm::VR::SQ || de.GetVL().IsUndefined())
				stop(DIANA_EDICOM, "file meta element (%04X,%04X) has an undefined length", t.GetGroup(),
				     t.GetElement());
			de.ReadValue<gdcm::ExplicitDataElement, SwapLE>(is, {});
		} catch (const NonStandardVR &n) {
			non_standard_vr(c, n, patches, 0);
			is.seekg(static_cast<std::streamoff>(pos));
			continue;
		} catch (...) {
			rethrow_as_stop(c);
		}
		if (c.sb->tell() - pos != element_size(de, true))
			stop(DIANA_EDICOM, "file meta element (%04X,%04X) at offset %llu is not what GDCM read",
			     t.GetGroup(), t.GetElement(), ull(pos));
		if (!fmi.GetDES().insert(de).second)
			stop(DIANA_EDICOM, "duplicate file meta element (%04X,%04X)", t.GetGroup(), t.GetElement());
	}
}

/* The dataset, one top-level element at a time. */
template <typename TDE, typename TSwap>
bool read_body(Ctx &c, std::istream &is, gdcm::DataSet &ds, bool skip_pixels, bool expl, bool defer_pixels)
{
	unsigned patches = 0;
	uint32_t last = 0;
	for (;;) {
		uint64_t pos = c.sb->tell(), size = c.sb->size();
		if (pos == size)
			return false;
		if (size - pos < 8) {
			/* a few zero bytes of padding after the last element */
			if (zeros(*c.sb, pos, size))
				return false;
			stop(DIANA_EDICOM, "data ends inside element (%04X,%04X): input truncated", last >> 16,
			     last & 0xFFFF);
		}
		gdcm::Tag t;
		gdcm::DataElement de;
		try {
			c.frames.clear();
			t.Read<TSwap>(is);
			is.seekg(static_cast<std::streamoff>(pos));
			uint32_t tag = (static_cast<uint32_t>(t.GetGroup()) << 16) | t.GetElement();
			if (skip_pixels && tag >= TAG_PIXEL_DATA)
				return true;
			if (t.GetGroup() == 0xFFFE)
				stop(DIANA_EDICOM, "unexpected delimiter (FFFE,%04X) at offset %llu", t.GetElement(), ull(pos));
			de.template ReadPreValue<TDE, TSwap>(is, {});
			uint32_t vl = de.GetVL();
			/* the bytes of a value (little endian, defined length, not a
			 * sequence) go straight into what becomes the model: GDCM's
			 * ReadValue would allocate, zero and fill a buffer that is
			 * copied again, for the same bytes (it reads such a value as
			 * they are). Every value in explicit VR; in implicit VR the
			 * large ones only (pixel data mostly). */
			if (std::is_same<TSwap, SwapLE>::value && vl != UNDEFINED_LENGTH && de.GetVR() != gdcm::VR::SQ &&
			    (vl >= BIG_VALUE || (std::is_same<TDE, gdcm::ExplicitDataElement>::value && vl > 0))) {
				if (defer_pixels && vl >= BIG_VALUE && tag == TAG_PIXEL_DATA && c.sb->file_backed()) {
					/* native Pixel Data stays in the file: written by
					 * copying it from there (ParseOptions::defer_pixels) */
					uint64_t off = c.sb->tell();
					if (vl > c.sb->size() - off)
						throw ShortRead();
					is.seekg(static_cast<std::streamoff>(off + vl));
					de.SetValue(*new FileValue(off, vl, nullptr));
				} else {
					std::string v;
					c.sb->read_into(v, vl);
					de.SetValue(*new ExternalValue(std::move(v)));
				}
			} else {
				de.template ReadValue<TDE, TSwap>(is, {});
			}
		} catch (const NonStandardVR &n) {
			non_standard_vr(c, n, patches, pixel_rep_of(ds, 0));
			is.seekg(static_cast<std::streamoff>(pos));
			continue;
		} catch (...) {
			rethrow_as_stop(c);
		}
		check_reports(c);
		uint32_t tag = (static_cast<uint32_t>(t.GetGroup()) << 16) | t.GetElement();
		uint64_t used = c.sb->tell() - pos, got = element_size(de, expl);
		if (used != got)
			stop(DIANA_EDICOM,
			     "element (%04X,%04X) at offset %llu: GDCM read %llu bytes but returned %llu "
			     "(a duplicate element, a wrong length or bytes it skipped)",
			     tag >> 16, tag & 0xFFFF, ull(pos), ull(used), ull(got));
		if (!ds.GetDES().insert(de).second)
			stop(DIANA_EDICOM, "duplicate element (%04X,%04X)", tag >> 16, tag & 0xFFFF);
		if ((tag >> 16) == 0x0002 && !c.lenient)
			stop(DIANA_EDICOM, "file meta element (0002,%04X) at offset %llu is inside the dataset", tag & 0xFFFF,
			     ull(pos));
		last = tag;
	}
}

/* ------------------------------------------------------------------------ */
/* GDCM's dataset into the model                                              */
/* ------------------------------------------------------------------------ */

struct Conv {
	Ctx *ctx;        /* of the whole input */
	bool lenient;
	int depth = 0;
};

void convert_set(Conv &cv, gdcm::DataSet &ds, bool expl, uint16_t pixel_rep, Item &out, bool consume);

/* Items of a sequence GDCM kept as bytes (implicit VR, defined length) or
 * that the dictionary says a UN element holds: GDCM reads them as implicit
 * VR little endian (PS3.5 7.5, 6.2.2). */
void sequence_from_bytes(Conv &cv, uint32_t tag, const char *p, size_t n, uint16_t pixel_rep, Element &el,
                         unsigned long *expected)
{
	InBuf sb(p, n);
	std::istream is(&sb);
	is.exceptions(std::ios::badbit);
	Ctx c;
	c.sb = &sb;
	c.lenient = cv.lenient;
	c.frames.push_back(Frame{ n, true, false });
	c.expected = expected;
	char where[40];
	snprintf(where, sizeof where, "in sequence (%04X,%04X): ", tag >> 16, tag & 0xFFFF);
	c.where = where;
	gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new gdcm::SequenceOfItems;
	{
		CtxScope scope(&c);
		try {
			sq->SetLength(static_cast<uint32_t>(n));
			sq->Read<gdcm::ImplicitDataElement, SwapLE>(is);
		} catch (...) {
			rethrow_as_stop(c);
		}
		if (sb.tell() != n || items_size(*sq, false) != n)
			stop(DIANA_EDICOM, "%sitems do not fill the sequence", where);
		check_reports(c);
	}
	el.vr = VR_SQ;
	el.sq_len = static_cast<uint32_t>(n);
	for (auto it = sq->Begin(); it != sq->End(); ++it) {
		Item item;
		item.undef_len = it->GetVL().IsUndefined();
		convert_set(cv, it->GetNestedDataSet(), false, pixel_rep, item, false);
		el.items.push_back(std::move(item));
	}
}

/* A public element stored as UN (PS3.5 6.2.2, e.g. after a round trip
 * through a system that did not know its VR) gets its dictionary VR, so
 * that its text is seen (and de-identified) as text. Private elements stay
 * UN: no private dictionary is guessed from. */
bool resolve_un(Conv &cv, const char *p, size_t n, uint16_t pixel_rep, Element &el)
{
	uint32_t tag = el.tag;
	if ((tag >> 16) & 1 || (tag & 0xFFFF) == 0 || (tag >> 16) == 0xFFFE)
		return false;
	uint16_t dv = dict_vr(tag, pixel_rep);
	if (dv == VR_UN)
		return false;
	if (dv == VR_SQ) {
		/* tentative: bytes that are not a sequence stay UN, and GDCM's
		 * reports while trying do not count */
		TraceCapture saved = trace_swap(TraceCapture());
		Element tmp;
		tmp.tag = tag;
		bool ok = true;
		unsigned long expected = 0;
		try {
			if (n)
				sequence_from_bytes(cv, tag, p, n, pixel_rep, tmp, &expected);
			else
				tmp.vr = VR_SQ;
		} catch (const Stop &) {
			ok = false;
		} catch (const Error &) {
			ok = false;
		} catch (...) {
			trace_swap(std::move(saved));
			throw;
		}
		TraceCapture mine = trace_swap(std::move(saved));
		if (mine.count != expected)
			ok = false;
		if (!ok)
			return false;
		el = std::move(tmp);
		return true;
	}
	if ((vr_is_numeric(dv) || dv == VR_AT) && n % (dv == VR_AT ? 4 : vr_word_size(dv)))
		return false;
	el.vr = dv;
	el.value.assign(p ? p : "", n);
	return true;
}

void convert_element(Conv &cv, const gdcm::DataElement &de, bool expl, uint16_t pixel_rep, Element &el)
{
	if (stack_exhausted())
		fail(DIANA_EDICOM, "sequences nested too deeply to be read");
	uint32_t tag = (static_cast<uint32_t>(de.GetTag().GetGroup()) << 16) | de.GetTag().GetElement();
	unsigned g = tag >> 16, e = tag & 0xFFFF;
	el.tag = tag;
	uint16_t vr = VR_UN;
	if (expl) {
		const char *s = gdcm::VR::GetVRString(de.GetVR());
		if (s && s[0] && s[1] && !s[2])
			vr = vr2(s[0], s[1]);
		if (!vr_known(vr))
			fail(DIANA_EDICOM, "element (%04X,%04X) has no valid VR", g, e);
	} else {
		vr = dict_vr(tag, pixel_rep);
	}
	el.vr = vr;

	if (const gdcm::SequenceOfItems *sq = items_of(de)) {
		/* undefined length: a sequence, or UN holding implicit VR data (CP-246) */
		if (expl && vr != VR_SQ && vr != VR_UN)
			fail(DIANA_EDICOM, "element (%04X,%04X) with VR %s has an undefined length", g, e,
			     vr_str(vr).c_str());
		bool inner = expl && vr == VR_SQ;
		el.vr = VR_SQ;
		el.undef_len = de.GetVL().IsUndefined();
		el.sq_len = el.undef_len ? 0 : static_cast<uint32_t>(de.GetVL());
		if (++cv.depth > MAX_DEPTH)
			fail(DIANA_EDICOM, "sequences nested deeper than %d levels", MAX_DEPTH);
		for (auto it = sq->Begin(); it != sq->End(); ++it) {
			Item item;
			item.undef_len = it->GetVL().IsUndefined();
			convert_set(cv, const_cast<gdcm::DataSet &>(it->GetNestedDataSet()), inner, pixel_rep, item,
			            false);
			el.items.push_back(std::move(item));
		}
		cv.depth--;
		return;
	}
	if (const gdcm::SequenceOfFragments *sf = value_fragments(element_value(de))) {
		if (tag != TAG_PIXEL_DATA)
			fail(DIANA_EDICOM, "element (%04X,%04X) holds fragments", g, e);
		el.vr = VR_OB; /* PS3.5 A.4 (GDCM writes OW as OB too) */
		el.encapsulated = true;
		el.undef_len = true;
		const gdcm::ByteValue *t = sf->GetTable().GetByteValue();
		el.frags.emplace_back(t ? t->GetPointer() : "", t ? static_cast<uint32_t>(t->GetLength()) : 0);
		for (size_t i = 0; i < sf->GetNumberOfFragments(); i++) {
			const gdcm::ByteValue *f = sf->GetFragment(i).GetByteValue();
			el.frags.emplace_back(f ? f->GetPointer() : "", f ? static_cast<uint32_t>(f->GetLength()) : 0);
		}
		return;
	}
	const gdcm::ByteValue *bv = value_bytes(element_value(de));
	size_t n = bv ? static_cast<uint32_t>(bv->GetLength()) : 0;
	if (const FileValue *fv = value_file(bv)) {
		/* deferred Pixel Data: the bytes stay in the source file */
		el.deferred = true;
		el.src_off = fv->offset();
		el.src_len = static_cast<uint32_t>(n);
		if (vr_word_size(vr) > 1 && n % vr_word_size(vr))
			fail(DIANA_EDICOM, "element (%04X,%04X) has a length that is not a multiple of %u", g, e,
			     vr_word_size(vr));
		return;
	}
	const char *p = nullptr;
	ExternalValue *ext = const_cast<ExternalValue *>(value_external(bv));
	if (n)
		p = ext ? ext->data() : bv->GetPointer();
	if (vr == VR_SQ) {
		/* GDCM keeps a sequence of defined length in implicit VR as bytes */
		if (++cv.depth > MAX_DEPTH)
			fail(DIANA_EDICOM, "sequences nested deeper than %d levels", MAX_DEPTH);
		if (n)
			sequence_from_bytes(cv, tag, p, n, pixel_rep, el, cv.ctx->expected);
		cv.depth--;
		return;
	}
	if (expl && vr == VR_UN && resolve_un(cv, p, n, pixel_rep, el))
		return;
	if (ext)
		el.value = ext->take();
	else
		el.value.assign(p ? p : "", n);
	if (vr_is_numeric(vr) || vr == VR_AT) {
		unsigned unit = vr == VR_AT ? 4 : vr_word_size(vr);
		if (n % unit)
			fail(DIANA_EDICOM, "element (%04X,%04X) has a length that is not a multiple of %u", g, e, unit);
	}
}

/* `consume`: release each GDCM element once converted (top level: the
 * pixel data is not held twice) */
void convert_set(Conv &cv, gdcm::DataSet &ds, bool expl, uint16_t pixel_rep, Item &out, bool consume)
{
	pixel_rep = pixel_rep_of(ds, pixel_rep);
	gdcm::DataSet::DataElementSet &des = ds.GetDES();
	out.elems.reserve(des.size());
	for (auto it = des.begin(); it != des.end();) {
		Element el;
		convert_element(cv, *it, expl, pixel_rep, el);
		out.elems.push_back(std::move(el)); /* the set is sorted and unique */
		if (consume)
			it = des.erase(it);
		else
			++it;
	}
}

/* ------------------------------------------------------------------------ */
/* whole inputs                                                               */
/* ------------------------------------------------------------------------ */

std::string trimmed_uid(const Element *e)
{
	if (!e)
		return std::string();
	return trim_value(e->value, VR_UI);
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

std::string inflate_all(const char *p, uint64_t n, uint64_t cap, bool lenient)
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
		constexpr size_t BUF = 65536;
		std::unique_ptr<char[]> mem; /* not on the stack: small thread stacks */
		try {
			mem.reset(new char[BUF]);
		} catch (...) {
			inflateEnd(&zs);
			throw;
		}
		char *buf = mem.get();
		uint64_t done = 0;
		int rc = Z_OK;
		while (rc == Z_OK) {
			uint64_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
			zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(p + done));
			zs.avail_in = static_cast<uInt>(chunk);
			zs.next_out = reinterpret_cast<Bytef *>(buf);
			zs.avail_out = BUF;
			rc = inflate(&zs, Z_NO_FLUSH);
			done += chunk - zs.avail_in;
			try {
				out.append(buf, BUF - zs.avail_out);
			} catch (...) {
				inflateEnd(&zs);
				throw;
			}
			if (cap && out.size() > cap) {
				inflateEnd(&zs);
				fail(DIANA_EINVAL, "inflated dataset larger than the limit of %llu bytes", ull(cap));
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

void check_meta(const Dataset &out)
{
	if (trimmed_uid(out.find_meta(0x00020010)).empty())
		fail(DIANA_EDICOM, "file meta lacks the Transfer Syntax UID (0002,0010)");
	/* Files written before PS3.10 settled may carry a minimal meta with
	 * neither Media Storage UID (the dataset's (0008,0016) and (0008,0018)
	 * then identify the instance); a meta that names the instance but not
	 * its class has lost an element. */
	bool has_class = !trimmed_uid(out.find_meta(0x00020002)).empty();
	bool has_inst = !trimmed_uid(out.find_meta(0x00020003)).empty();
	if (has_inst && !has_class)
		fail(DIANA_EDICOM, "file meta lacks the Media Storage SOP Class UID (0002,0002)");
	if (has_class && !has_inst)
		fail(DIANA_EDICOM, "file meta lacks the Media Storage SOP Instance UID (0002,0003)");
}

/* The encoding of data without a transfer syntax (a raw dataset, or a
 * lenient file meta without one), as GDCM guesses it. */
Encoding guess_encoding(Ctx &c, std::istream &is, bool part10)
{
	uint64_t pos = c.sb->tell();
	const char *not_dicom = "not DICOM: no file meta, and the data does not begin with a group 0008 element";
	if (c.sb->size() - pos < 8) {
		if (!part10)
			fail(DIANA_EDICOM, "%s", not_dicom);
		return Encoding::ExplicitLE; /* nothing or padding: read as such */
	}
	gdcm::FileMetaInformation probe;
	try {
		gdcm::Tag t;
		t.Read<SwapLE>(is);
		is.seekg(static_cast<std::streamoff>(pos));
		/* group 0008 as little endian, or as big endian */
		if (!part10 && t.GetGroup() != 0x0008 && t.GetGroup() != 0x0800)
			fail(DIANA_EDICOM, "%s", not_dicom);
		probe.ReadCompat(is);
		is.seekg(static_cast<std::streamoff>(pos));
	} catch (const Error &) {
		throw;
	} catch (...) {
		if (!part10)
			fail(DIANA_EDICOM, "%s", not_dicom);
		/* GDCM gives up on data that starts with neither group 0008 nor a
		 * private creator: apply its group 0008 rule (a VR after the tag
		 * means explicit VR little endian, else implicit) */
		is.clear();
		is.seekg(static_cast<std::streamoff>(pos));
		const char *v = c.sb->at(pos + 4, 2);
		char vr[3] = { v[0], v[1], 0 };
		return gdcm::VR::IsValid(vr) ? Encoding::ExplicitLE : Encoding::ImplicitLE;
	}
	switch (probe.GetDataSetTransferSyntax()) {
	case gdcm::TransferSyntax::ImplicitVRLittleEndian:
		return Encoding::ImplicitLE;
	case gdcm::TransferSyntax::ExplicitVRLittleEndian:
		return Encoding::ExplicitLE;
	case gdcm::TransferSyntax::ExplicitVRBigEndian:
		return Encoding::ExplicitBE;
	default:
		fail(DIANA_EDICOM, "%s", part10 ? "unsupported dataset encoding (no transfer syntax)" : not_dicom);
	}
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

void parse_input(InBuf &sb, const ParseOptions &opts, Dataset &out)
{
	trace_install();
	TraceCapture saved = trace_swap(TraceCapture());
	struct Restore {
		TraceCapture &saved;
		TraceCapture mine;
		bool done = false;
		~Restore()
		{
			if (!done)
				trace_swap(std::move(saved));
		}
	} restore{ saved, {} };

	std::istream is(&sb);
	is.exceptions(std::ios::badbit);
	Ctx c;
	c.sb = &sb;
	c.lenient = opts.lenient;
	StackScope stack;
	CtxScope scope(&c);

	uint64_t size = sb.size();
	bool part10 = false;
	const char *head = sb.at(0, std::min<uint64_t>(size, 132));
	gdcm::FileMetaInformation fmi;
	if (size >= 132 && !memcmp(head + 128, "DICM", 4)) {
		try {
			fmi.GetPreamble().Read(is);
		} catch (...) {
			rethrow_as_stop(c);
		}
		part10 = true;
	} else if (opts.lenient && size >= 4 && !memcmp(head, "DICM", 4)) {
		is.seekg(4); /* file meta without preamble, "DICM" kept */
		part10 = true;
	} else if (opts.lenient && size >= 8 && head[0] == 0x02 && head[1] == 0x00 && vr_known(vr2(head[4], head[5]))) {
		part10 = true; /* file meta without preamble nor "DICM" */
	}
	if (!part10 && size == 0)
		fail(DIANA_EDICOM, "input is empty");

	if (part10) {
		out.has_meta = true;
		read_meta(c, is, fmi);
		Item meta;
		Conv cv{ &c, opts.lenient };
		convert_set(cv, fmi, true, 0, meta, false);
		out.meta = std::move(meta.elems);
		if (!opts.lenient)
			check_meta(out);
	}

	std::string ts = trimmed_uid(out.find_meta(0x00020010));
	Encoding enc;
	if (!ts.empty()) {
		if (!ts_encoding(ts, &enc))
			fail(DIANA_EDICOM, "unsupported transfer syntax in file meta (0002,0010)");
	} else {
		enc = guess_encoding(c, is, part10);
		ts = encoding_ts(enc);
	}
	out.ts = ts;
	out.enc = enc;

	/* a deflated dataset is inflated first, then read as explicit VR LE */
	InBuf *body = &sb;
	std::unique_ptr<InBuf> inflated;
	std::unique_ptr<std::istream> inflated_is;
	std::istream *bis = &is;
	if (enc == Encoding::DeflatedLE) {
		uint64_t pos = sb.tell();
		const char *p = sb.at(pos, size - pos);
		if (!p)
			fail(DIANA_EDICOM, "data truncated");
		inflated.reset(new InBuf(inflate_all(p, size - pos, opts.max_inflated ? opts.max_inflated : (2ull << 30),
		                                     opts.lenient)));
		body = inflated.get();
		inflated_is.reset(new std::istream(body));
		inflated_is->exceptions(std::ios::badbit);
		bis = inflated_is.get();
		c.sb = body;
	}

	gdcm::DataSet ds;
	bool expl = enc != Encoding::ImplicitLE;
	bool stopped;
	/* deferred only from a file, little endian, not deflated (inflated data is in memory) */
	bool defer = opts.defer_pixels && enc != Encoding::DeflatedLE && enc != Encoding::ExplicitBE;
	if (enc == Encoding::ImplicitLE)
		stopped = read_body<gdcm::ImplicitDataElement, SwapLE>(c, *bis, ds, opts.skip_pixels, expl, defer);
	else if (enc == Encoding::ExplicitBE)
		stopped = read_body<gdcm::ExplicitDataElement, SwapBE>(c, *bis, ds, opts.skip_pixels, expl, false);
	else
		stopped = read_body<gdcm::ExplicitDataElement, SwapLE>(c, *bis, ds, opts.skip_pixels, expl, defer);
	out.pixels_skipped = stopped;

	Conv cv{ &c, opts.lenient };
	convert_set(cv, ds, expl, 0, out.root, true);

	/* GDCM reported a defect it read past or repaired */
	restore.mine = trace_swap(std::move(saved));
	restore.done = true;
	if (restore.mine.count > *c.expected)
		fail(DIANA_EDICOM, "GDCM repaired the data: %s", restore.mine.first.c_str());

	if (opts.lenient) {
		out.lenient = true;
	} else {
		Item meta_item;
		meta_item.elems = out.meta;
		validate_values(meta_item);
		validate_values(out.root);
	}
}

void parse_guarded(InBuf &sb, const ParseOptions &opts, Dataset &out)
{
	try {
		parse_input(sb, opts, out);
	} catch (const Stop &s) {
		throw Error(s.code, s.msg);
	} catch (const NonStandardVR &n) {
		fail(DIANA_EDICOM, "element (%04X,%04X) has a non-standard VR", n.tag >> 16, n.tag & 0xFFFF);
	} catch (const ShortRead &) {
		fail(DIANA_EDICOM, "data truncated");
	}
}

} // namespace

namespace {

struct StackState {
	const char *base = nullptr;
	size_t budget = 0;
	const char *lo = nullptr; /* lowest address of this thread's stack */
	bool known = false;
};

thread_local StackState t_stack;

} // namespace

StackScope::StackScope() : saved_base_(t_stack.base), saved_budget_(t_stack.budget)
{
	StackState &s = t_stack;
	if (s.base)
		return; /* nested scope: the outer one's budget applies */
	if (!s.known) {
		pthread_attr_t a;
		if (pthread_getattr_np(pthread_self(), &a) == 0) {
			void *addr = nullptr;
			size_t sz = 0;
			if (pthread_attr_getstack(&a, &addr, &sz) == 0)
				s.lo = static_cast<const char *>(addr);
			pthread_attr_destroy(&a);
		}
		s.known = true;
	}
	const char *here = static_cast<const char *>(__builtin_frame_address(0));
	size_t room = (s.lo && here > s.lo) ? static_cast<size_t>(here - s.lo) : 256 * 1024;
	/* half of what is left, less on large stacks, at most 16 MiB */
	size_t budget = room > 256 * 1024 ? room - 128 * 1024 : room / 2;
	s.base = here;
	s.budget = std::min<size_t>(budget, 16u << 20);
}

StackScope::~StackScope()
{
	t_stack.base = saved_base_;
	t_stack.budget = saved_budget_;
}

bool stack_exhausted()
{
	const StackState &s = t_stack;
	const char *here = static_cast<const char *>(__builtin_frame_address(0));
	return s.base && here < s.base && static_cast<size_t>(s.base - here) > s.budget;
}

void parse_memory(const uint8_t *data, size_t len, const ParseOptions &opts, Dataset &out)
{
	InBuf sb(reinterpret_cast<const char *>(data), len);
	parse_guarded(sb, opts, out);
}

void parse_file(int fd, uint64_t size, const ParseOptions &opts, Dataset &out)
{
	InBuf sb(fd, size);
	parse_guarded(sb, opts, out);
}

} // namespace diana_dcm
