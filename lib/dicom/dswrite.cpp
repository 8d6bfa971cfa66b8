/*
 * libdiana - DICOM writer: the model of dsmodel.h becomes a gdcm::DataSet
 * (and a gdcm::FileMetaInformation) that GDCM encodes.
 *
 * GDCM writes the preamble (gdcm::Preamble), the file meta and the dataset
 * (gdcm::DataSet::Write over gdcm::ExplicitDataElement or
 * gdcm::ImplicitDataElement, in the dataset's byte order), streaming into a
 * Sink (a memory buffer, or the temporary file of an atomic save). What
 * libdiana adds: the file meta completed by build_meta(), group lengths
 * recomputed (the bytes GDCM writes for the rest of the group, counted by
 * writing them), deflate for the deflated transfer syntax (zlib), values
 * GDCM writes from the model's memory (ExternalValue, no copy), and the
 * specialisations of dsgdcm.h so that odd value lengths are written as
 * read. The transfer syntax, the definedness of sequence and item lengths
 * and the fragments of encapsulated pixel data are kept, so an unchanged
 * dataset is written back byte for byte, apart from a zeroed preamble, the
 * completed file meta, recomputed group lengths, encapsulated Pixel Data as
 * OB, fragments padded to an even length, and containers GDCM could not
 * measure safely (see has_odd and MAX_WALKED_LEVELS) written with an
 * undefined length.
 * SPDX-License-Identifier: MIT
 */
#include "dsgdcm.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <type_traits>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../core/core.h"
#include "dsmodel.h"

/* GDCM's writers of value lengths and values, minus the padding of odd
 * lengths (and, without swapping, minus a copy of the value) */
namespace gdcm {

template <> const std::ostream &VL::Write<diana_dcm::SwapLE>(std::ostream &os) const
{
	uint32_t copy = ValueLength;
	diana_dcm::SwapLE::SwapArray(&copy, 1);
	return os.write(reinterpret_cast<char *>(&copy), sizeof(uint32_t));
}

template <> const std::ostream &VL::Write<diana_dcm::SwapBE>(std::ostream &os) const
{
	uint32_t copy = ValueLength;
	diana_dcm::SwapBE::SwapArray(&copy, 1);
	return os.write(reinterpret_cast<char *>(&copy), sizeof(uint32_t));
}

template <> const std::ostream &VL::Write16<diana_dcm::SwapLE>(std::ostream &os) const
{
	uint16_t copy = static_cast<uint16_t>(ValueLength);
	diana_dcm::SwapLE::SwapArray(&copy, 1);
	return os.write(reinterpret_cast<char *>(&copy), sizeof(uint16_t));
}

template <> const std::ostream &VL::Write16<diana_dcm::SwapBE>(std::ostream &os) const
{
	uint16_t copy = static_cast<uint16_t>(ValueLength);
	diana_dcm::SwapBE::SwapArray(&copy, 1);
	return os.write(reinterpret_cast<char *>(&copy), sizeof(uint16_t));
}

} // namespace gdcm

namespace {

/* a value still in the source file: copied from there (dswrite's stream
 * buffers know how; anything else gets it through memory) */
void write_file_value(std::ostream &os, const diana_dcm::FileValue &fv, bool swap);

template <typename TSwap, typename TType>
const std::ostream &write_value(std::ostream &os, const gdcm::ByteValue &bv)
{
	size_t n = static_cast<uint32_t>(bv.GetLength());
	if (!n)
		return os;
	if (const diana_dcm::FileValue *fv = diana_dcm::value_file(&bv)) {
		write_file_value(os, *fv, sizeof(TType) > 1 && !std::is_same<TSwap, diana_dcm::SwapLE>::value);
		return os;
	}
	const diana_dcm::ExternalValue *bo = diana_dcm::value_external(&bv);
	const char *p = bo ? bo->data() : bv.GetPointer();
	if (sizeof(TType) == 1 || std::is_same<TSwap, diana_dcm::SwapLE>::value)
		return os.write(p, static_cast<std::streamsize>(n));
	std::string copy(p, n);
	TSwap::SwapArray(reinterpret_cast<TType *>(&copy[0]), n / sizeof(TType));
	return os.write(copy.data(), static_cast<std::streamsize>(n));
}

} // namespace

namespace gdcm {

#define DIANA_BV_WRITE(S, T)                                                                     \
	template <> std::ostream const &ByteValue::Write<diana_dcm::S, T>(std::ostream & os) const   \
	{                                                                                            \
		return const_cast<std::ostream &>(write_value<diana_dcm::S, T>(os, *this));              \
	}
DIANA_BV_WRITE(SwapLE, uint8_t)
DIANA_BV_WRITE(SwapLE, uint16_t)
DIANA_BV_WRITE(SwapLE, uint32_t)
DIANA_BV_WRITE(SwapLE, uint64_t)
DIANA_BV_WRITE(SwapBE, uint8_t)
DIANA_BV_WRITE(SwapBE, uint16_t)
DIANA_BV_WRITE(SwapBE, uint32_t)
DIANA_BV_WRITE(SwapBE, uint64_t)
#undef DIANA_BV_WRITE

} // namespace gdcm

namespace diana_dcm {

namespace {

/* libdiana's implementation class UID (a 2.25 UUID-derived UID) */
constexpr const char *IMPL_CLASS_UID = "2.25.181521075899651419384111595336507994547";
constexpr const char *IMPL_VERSION = "LIBDIANA_" DIANA_VERSION_STRING;

/* GDCM's recursive writing calls the stream buffer at every level */
void check_depth()
{
	if (stack_exhausted())
		fail(DIANA_EDICOM, "sequences nested too deeply to be written");
}

/* GDCM writes into a Sink, through a buffer */
class SinkBuf : public std::streambuf {
public:
	explicit SinkBuf(Sink &s) : s_(s), buf_(new char[SIZE]) { setp(buf_.get(), buf_.get() + SIZE); }
	void finish() { drain(); }
	/* a value still in the source file, after what is buffered */
	void copy(const SourceFile &src, uint64_t off, uint64_t len)
	{
		drain();
		s_.copy(src, off, len);
	}

protected:
	std::streamsize xsputn(const char *p, std::streamsize n) override
	{
		check_depth();
		size_t k = static_cast<size_t>(n);
		if (k >= SIZE) {
			drain();
			s_.write(p, k); /* large values: no copy into the buffer */
			return n;
		}
		if (k > static_cast<size_t>(epptr() - pptr()))
			drain();
		memcpy(pptr(), p, k);
		pbump(static_cast<int>(k));
		return n;
	}
	int_type overflow(int_type ch) override
	{
		drain();
		if (ch != traits_type::eof()) {
			*pptr() = static_cast<char>(ch);
			pbump(1);
		}
		return traits_type::not_eof(ch);
	}

private:
	void drain()
	{
		size_t k = static_cast<size_t>(pptr() - pbase());
		if (k)
			s_.write(pbase(), k);
		setp(buf_.get(), buf_.get() + SIZE);
	}

	static constexpr size_t SIZE = 16384;
	Sink &s_;
	std::unique_ptr<char[]> buf_; /* not on the stack: writing may run on small thread stacks */
};

class BufSink : public Sink {
public:
	explicit BufSink(Buf &b) : b_(b) {}
	void write(const char *p, size_t n) override { b_.put(p, n); }

private:
	Buf &b_;
};

/* ... or only counts */
class CountBuf : public std::streambuf {
public:
	uint64_t n = 0;

protected:
	std::streamsize xsputn(const char *, std::streamsize k) override
	{
		check_depth();
		n += static_cast<uint64_t>(k);
		return k;
	}
	int_type overflow(int_type ch) override
	{
		if (ch != traits_type::eof())
			n++;
		return traits_type::not_eof(ch);
	}
};

constexpr size_t COPY_CHUNK = 1u << 20;

/* `len` bytes at `off` of the source, chunk by chunk (the source must not
 * have changed size since it was read: a value that is not there any more
 * is an error, never zeros) */
template <typename F> void read_source(const SourceFile &src, uint64_t off, uint64_t len, F &&each)
{
	struct stat st;
	if (fstat(src.fd, &st) < 0)
		fail(DIANA_EIO, "cannot stat the input file: %s", strerror(errno));
	if (static_cast<uint64_t>(st.st_size) != src.size || off > src.size || len > src.size - off)
		fail(DIANA_EIO, "the input file changed while it was being processed");
	std::unique_ptr<char[]> buf(new char[std::min<uint64_t>(len, COPY_CHUNK)]);
	while (len) {
		size_t want = static_cast<size_t>(std::min<uint64_t>(len, COPY_CHUNK));
		ssize_t r = pread(src.fd, buf.get(), want, static_cast<off_t>(off));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail(DIANA_EIO, "cannot read the input file: %s", strerror(errno));
		if (r == 0)
			fail(DIANA_EIO, "the input file changed while it was being processed");
		each(buf.get(), static_cast<size_t>(r));
		off += static_cast<uint64_t>(r);
		len -= static_cast<uint64_t>(r);
	}
}

} // namespace
} // namespace diana_dcm

namespace {

void write_file_value(std::ostream &os, const diana_dcm::FileValue &fv, bool swap)
{
	using namespace diana_dcm;
	if (swap || !fv.source())
		fail(DIANA_ERROR, "a deferred value cannot be written here");
	uint32_t n = static_cast<uint32_t>(fv.GetLength());
	std::streambuf *sb = os.rdbuf();
	if (SinkBuf *s = dynamic_cast<SinkBuf *>(sb)) {
		s->copy(*fv.source(), fv.offset(), n);
		return;
	}
	if (CountBuf *cb = dynamic_cast<CountBuf *>(sb)) {
		cb->n += n;
		return;
	}
	read_source(*fv.source(), fv.offset(), n,
	            [&os](const char *p, size_t k) { os.write(p, static_cast<std::streamsize>(k)); });
}

} // namespace

namespace diana_dcm {
namespace {

struct Enc {
	bool expl;
	bool be;
	const SourceFile *src; /* of deferred values, or nullptr */
};

template <typename TDE, typename TSwap> void write_element(std::ostream &os, const gdcm::DataElement &de)
{
	de.Write<TDE, TSwap>(os);
}

/* bytes GDCM writes for `de` */
uint64_t written_size(const gdcm::DataElement &de, Enc e)
{
	CountBuf cb;
	std::ostream os(&cb);
	os.exceptions(std::ios::badbit);
	if (!e.expl)
		write_element<gdcm::ImplicitDataElement, SwapLE>(os, de);
	else if (e.be)
		write_element<gdcm::ExplicitDataElement, SwapBE>(os, de);
	else
		write_element<gdcm::ExplicitDataElement, SwapLE>(os, de);
	return cb.n;
}

gdcm::VR gdcm_vr(uint16_t vr)
{
	char s[3] = { static_cast<char>(vr >> 8), static_cast<char>(vr & 0xFF), 0 };
	return gdcm::VR(gdcm::VR::GetVRTypeFromFile(s));
}

gdcm::Tag gdcm_tag(uint32_t tag)
{
	return gdcm::Tag(static_cast<uint16_t>(tag >> 16), static_cast<uint16_t>(tag & 0xFFFF));
}

/* GDCM sums the lengths inside a sequence or item of defined length with
 * code that asserts they are even: such containers holding an odd-length
 * value anywhere are written with undefined lengths instead */
bool has_odd(const Element &el)
{
	if (el.vr == VR_SQ) {
		for (const Item &it : el.items)
			for (const Element &c : it.elems)
				if (has_odd(c))
					return true;
		return false;
	}
	return !el.encapsulated && (el.length() & 1);
}

/* GDCM computes the length of a sequence or item of defined length by
 * walking its content, and its walk (compiled with assertions that repeat
 * it) takes time exponential in the number of sequences it descends into:
 * those of undefined length, and in implicit VR all of them. A container
 * with more such levels below it than this is written with an undefined
 * length instead. */
constexpr int MAX_WALKED_LEVELS = 6;

int build_set(const std::vector<Element> &elems, Enc e, gdcm::DataSet &out);

/* about the size of the encoded elements (one allocation for the output) */
size_t estimated_size(const std::vector<Element> &elems)
{
	size_t n = 0;
	for (const Element &el : elems) {
		n += 16 + el.length();
		for (const std::string &f : el.frags)
			n += 8 + f.size();
		for (const Item &it : el.items)
			n += 16 + estimated_size(it.elems);
	}
	return n;
}

/* `walked`: levels of sequences GDCM descends into to compute a length
 * that includes this element */
gdcm::DataElement build_element(const Element &el, Enc e, int &walked)
{
	check_depth();
	walked = 0;
	gdcm::DataElement de(gdcm_tag(el.tag));
	uint16_t vr = el.vr;
	unsigned g = el.tag >> 16, n = el.tag & 0xFFFF;
	/* what GDCM writes for UN there (and counts otherwise) */
	if (vr == VR_UN && n == 0)
		vr = VR_UL;
	else if (vr == VR_UN && (g & 1) && n >= 0x10 && n <= 0xFF)
		vr = VR_LO;
	de.SetVR(gdcm_vr(vr));

	if (vr == VR_SQ) {
		bool odd = has_odd(el);
		int below = 0;
		gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new gdcm::SequenceOfItems;
		for (const Item &it : el.items) {
			gdcm::Item gi;
			int w = build_set(it.elems, e, gi.GetNestedDataSet());
			below = std::max(below, w);
			if (it.undef_len || odd || w > MAX_WALKED_LEVELS)
				gi.SetVLToUndefined();
			else
				gi.SetVL(0); /* defined: GDCM computes it when writing */
			sq->AddItem(gi);
		}
		bool undef = el.undef_len || odd || below > MAX_WALKED_LEVELS;
		walked = below + ((undef || !e.expl) ? 1 : 0);
		if (undef) {
			sq->SetLengthToUndefined();
			de.SetValue(*sq);
			de.SetVLToUndefined();
		} else {
			sq->SetLength(0);
			gdcm::VL len = e.expl ? sq->ComputeLength<gdcm::ExplicitDataElement>()
			                      : sq->ComputeLength<gdcm::ImplicitDataElement>();
			sq->SetLength(len);
			de.SetValue(*sq);
		}
		return de;
	}
	if (el.encapsulated) {
		gdcm::SmartPointer<gdcm::SequenceOfFragments> sf = new gdcm::SequenceOfFragments;
		for (size_t i = 0; i < el.frags.size(); i++) {
			const std::string &f = el.frags[i];
			if (f.size() >= UNDEFINED_LENGTH - 1)
				fail(DIANA_EDICOM, "pixel data fragment too large");
			/* fragments have even lengths (PS3.5 A.4): GDCM pads with a 0 */
			if (i == 0)
				sf->GetTable().SetByteValue(f.data(), static_cast<uint32_t>(f.size()));
			else {
				gdcm::Fragment frag;
				frag.SetByteValue(f.data(), static_cast<uint32_t>(f.size()));
				sf->AddFragment(frag);
			}
		}
		de.SetValue(*sf);
		de.SetVL(gdcm::VL(UNDEFINED_LENGTH)); /* SetVLToUndefined() asserts SQ or UN */
		return de;
	}
	size_t size = el.length();
	if (size >= UNDEFINED_LENGTH)
		fail(DIANA_EDICOM, "value of element (%04X,%04X) too large", g, n);
	if (e.expl && !vr_long_form(vr) && size > 0xFFFF)
		fail(DIANA_EDICOM, "value of element (%04X,%04X) is too long for VR %s", g, n, vr_str(vr).c_str());
	if (el.deferred) {
		if (!e.src || e.be)
			fail(DIANA_ERROR, "deferred value of (%04X,%04X) without its source file", g, n);
		gdcm::SmartPointer<gdcm::ByteValue> bv = new FileValue(el.src_off, static_cast<uint32_t>(size), e.src);
		de.SetValue(*bv);
		return de;
	}
	if (size) {
		/* the length as it is (odd or not), the bytes where they are */
		gdcm::SmartPointer<gdcm::ByteValue> bv = new ExternalValue(el.value.data(), static_cast<uint32_t>(size));
		de.SetValue(*bv);
	}
	return de;
}

int build_set(const std::vector<Element> &elems, Enc e, gdcm::DataSet &out)
{
	gdcm::DataSet::DataElementSet &des = out.GetDES();
	int walked = 0;
	for (const Element &el : elems) {
		int w;
		des.insert(des.end(), build_element(el, e, w)); /* sorted already */
		walked = std::max(walked, w);
	}
	/* group lengths: the bytes written for the rest of the group */
	for (auto it = des.begin(); it != des.end(); ++it) {
		const gdcm::Tag &t = it->GetTag();
		if (t.GetElement() != 0 || it->GetVR() != gdcm::VR::UL || it->GetVL() != 4)
			continue;
		uint64_t len = 0;
		for (auto jt = std::next(it); jt != des.end() && jt->GetTag().GetGroup() == t.GetGroup(); ++jt)
			len += written_size(*jt, e);
		uint32_t v = len >= UNDEFINED_LENGTH ? 0 : static_cast<uint32_t>(len);
		gdcm::DataElement gl(t, 4, gdcm::VR::UL);
		gl.SetByteValue(reinterpret_cast<const char *>(&v), 4);
		gdcm::DataElement &target = const_cast<gdcm::DataElement &>(*it); /* same tag: order kept */
		target = gl;
	}
	return walked;
}

std::string ui_value(const std::string &s)
{
	std::string v = s;
	if (v.size() & 1)
		v.push_back('\0');
	return v;
}

std::string trimmed(const Element *e)
{
	if (!e)
		return std::string();
	return trim_value(e->value, VR_UI);
}

void set_meta(std::vector<Element> &m, uint32_t tag, uint16_t vr, const std::string &value)
{
	Element el;
	el.tag = tag;
	el.vr = vr;
	el.value = value;
	auto it = std::lower_bound(m.begin(), m.end(), tag,
	                           [](const Element &x, uint32_t t) { return x.tag < t; });
	if (it != m.end() && it->tag == tag)
		*it = std::move(el);
	else
		m.insert(it, std::move(el));
}

void deflate_into(std::ostream &o, const char *p, size_t n)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		throw std::bad_alloc();
	size_t done = 0, total = 0;
	int rc;
	constexpr size_t BUF = 65536;
	std::unique_ptr<char[]> mem;
	try {
		mem.reset(new char[BUF]);
	} catch (...) {
		deflateEnd(&zs);
		throw;
	}
	char *buf = mem.get();
	do {
		size_t chunk = n - done > 1u << 30 ? 1u << 30 : n - done;
		zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(p + done));
		zs.avail_in = static_cast<uInt>(chunk);
		int flush = done + chunk == n ? Z_FINISH : Z_NO_FLUSH;
		do {
			zs.next_out = reinterpret_cast<Bytef *>(buf);
			zs.avail_out = BUF;
			rc = deflate(&zs, flush);
			if (rc == Z_STREAM_ERROR) {
				deflateEnd(&zs);
				fail(DIANA_ERROR, "deflate failed");
			}
			try {
				o.write(buf, static_cast<std::streamsize>(BUF - zs.avail_out));
			} catch (...) {
				deflateEnd(&zs);
				throw;
			}
			total += BUF - zs.avail_out;
		} while (zs.avail_out == 0);
		done += chunk;
	} while (rc != Z_STREAM_END);
	deflateEnd(&zs);
	/* PS3.5 A.5: the deflated stream is padded to an even length */
	if (total & 1)
		o.put('\0');
}

} // namespace

std::vector<Element> build_meta(const Dataset &ds)
{
	std::vector<Element> m;
	for (const Element &e : ds.meta)
		if (e.tag != 0x00020000 && e.tag != 0x00020010)
			m.push_back(e);
	auto has = [&m](uint32_t tag) {
		for (const Element &e : m)
			if (e.tag == tag && !trim_value(e.value, e.vr).empty())
				return true;
		return false;
	};
	if (!has(0x00020001))
		set_meta(m, 0x00020001, VR_OB, std::string("\x00\x01", 2));
	/* Media Storage SOP Class/Instance UIDs: from the dataset when the meta
	 * lacks them and the dataset has both; otherwise left as they are (a
	 * minimal meta with neither is what some writers produce). */
	if (!has(0x00020002) || !has(0x00020003)) {
		std::string cls = has(0x00020002) ? std::string() : trimmed(ds.root.find(0x00080016));
		std::string inst = has(0x00020003) ? std::string() : trimmed(ds.root.find(0x00080018));
		bool ok = (has(0x00020002) || !cls.empty()) && (has(0x00020003) || !inst.empty());
		if (ok && !cls.empty())
			set_meta(m, 0x00020002, VR_UI, ui_value(cls));
		if (ok && !inst.empty())
			set_meta(m, 0x00020003, VR_UI, ui_value(inst));
	}
	set_meta(m, 0x00020010, VR_UI, ui_value(ds.ts));
	if (!has(0x00020012)) {
		set_meta(m, 0x00020012, VR_UI, ui_value(IMPL_CLASS_UID));
		std::string ver = IMPL_VERSION;
		if (ver.size() > 16)
			ver.resize(16);
		if (ver.size() & 1)
			ver.push_back(' ');
		set_meta(m, 0x00020013, VR_SH, ver);
	}
	/* group length: value computed by the writer */
	set_meta(m, 0x00020000, VR_UL, std::string(4, '\0'));
	return m;
}

/* GDCM's reports while building or writing: the dataset cannot be encoded */
class TraceScope {
public:
	TraceScope() : saved_(trace_swap(TraceCapture())) { trace_install(); }
	~TraceScope()
	{
		if (!done_)
			trace_swap(std::move(saved_));
	}
	TraceScope(const TraceScope &) = delete;
	TraceScope &operator=(const TraceScope &) = delete;
	void check()
	{
		done_ = true;
		TraceCapture mine = trace_swap(std::move(saved_));
		if (mine.count)
			fail(DIANA_EDICOM, "GDCM could not encode the dataset: %s", mine.first.c_str());
	}

private:
	TraceCapture saved_;
	bool done_ = false;
};

struct Part10::Impl {
	Encoding enc;
	std::vector<Element> meta; /* GDCM's elements borrow the values of these... */
	const Dataset &ds;         /* ... and of this */
	gdcm::FileMetaInformation fmi;
	gdcm::DataSet body;
	explicit Impl(const Dataset &d) : ds(d) {}
};

Part10::Part10(const Dataset &ds) : impl_(nullptr)
{
	if (ds.pixels_skipped)
		fail(DIANA_EUNSUPPORTED, "dataset was read without its pixel data (DIANA_OPEN_SKIP_PIXELS): not written");
	Encoding enc;
	if (ds.ts.empty())
		fail(DIANA_EDICOM, "encapsulated pixel data without a transfer syntax: give (0002,0010) in the JSON file meta");
	if (!ts_encoding(ds.ts, &enc))
		fail(DIANA_EDICOM, "cannot write transfer syntax of the dataset");
	std::unique_ptr<Impl> im(new Impl(ds));
	im->enc = enc;
	StackScope stack;
	TraceScope trace;
	im->meta = build_meta(ds);
	build_set(im->meta, Enc{ true, false, nullptr }, im->fmi);
	for (const Element &el : ds.root.elems)
		if ((el.tag >> 16) == 0x0002)
			fail(DIANA_EDICOM, "file meta element (0002,%04X) inside the dataset: not written", el.tag & 0xFFFF);
	build_set(ds.root.elems, Enc{ enc != Encoding::ImplicitLE, enc == Encoding::ExplicitBE, ds.src.get() }, im->body);
	trace.check();
	impl_ = im.release();
}

Part10::~Part10()
{
	delete impl_;
}

void Part10::write(Sink &out) const
{
	const Impl &im = *impl_;
	StackScope stack;
	TraceScope trace;
	SinkBuf sb(out);
	std::ostream os(&sb);
	os.exceptions(std::ios::badbit);
	im.fmi.GetPreamble().Write(os);
	static_cast<const gdcm::DataSet &>(im.fmi).Write<gdcm::ExplicitDataElement, SwapLE>(os);
	switch (im.enc) {
	case Encoding::DeflatedLE: {
		Buf raw;
		BufSink rs(raw);
		SinkBuf rb(rs);
		std::ostream ros(&rb);
		ros.exceptions(std::ios::badbit);
		im.body.Write<gdcm::ExplicitDataElement, SwapLE>(ros);
		rb.finish();
		deflate_into(os, raw.data(), raw.size());
		break;
	}
	case Encoding::ImplicitLE:
		im.body.Write<gdcm::ImplicitDataElement, SwapLE>(os);
		break;
	case Encoding::ExplicitBE:
		im.body.Write<gdcm::ExplicitDataElement, SwapBE>(os);
		break;
	default:
		im.body.Write<gdcm::ExplicitDataElement, SwapLE>(os);
		break;
	}
	sb.finish();
	trace.check();
}

/* ------------------------------------------------------------------------ */
/* values still in the source file                                           */
/* ------------------------------------------------------------------------ */

void Sink::copy(const SourceFile &src, uint64_t off, uint64_t len)
{
	read_source(src, off, len, [this](const char *p, size_t n) { write(p, n); });
}

void copy_source_to_fd(const SourceFile &src, uint64_t off, uint64_t len, int out_fd)
{
	struct stat st;
	if (fstat(src.fd, &st) < 0)
		fail(DIANA_EIO, "cannot stat the input file: %s", strerror(errno));
	if (static_cast<uint64_t>(st.st_size) != src.size || off > src.size || len > src.size - off)
		fail(DIANA_EIO, "the input file changed while it was being processed");
	/* in the kernel: no copy through this process (and shared extents
	 * where the file system can) */
	loff_t in = static_cast<loff_t>(off);
	while (len) {
		ssize_t r = copy_file_range(src.fd, &in, out_fd, nullptr, static_cast<size_t>(std::min<uint64_t>(len, 1u << 30)), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL ||
		              errno == EBADF || errno == EPERM)) {
			/* not between these files: read and write (from where it stopped) */
			read_source(src, static_cast<uint64_t>(in), len, [out_fd](const char *p, size_t n) {
				while (n) {
					ssize_t w = ::write(out_fd, p, n);
					if (w < 0 && errno == EINTR)
						continue;
					if (w < 0)
						fail(DIANA_EIO, "cannot write file: %s", strerror(errno));
					p += w;
					n -= static_cast<size_t>(w);
				}
			});
			return;
		}
		if (r < 0)
			fail(DIANA_EIO, "cannot copy the pixel data: %s", strerror(errno));
		if (r == 0)
			fail(DIANA_EIO, "the input file changed while it was being processed");
		len -= static_cast<uint64_t>(r);
	}
}

void load_deferred(const Dataset &ds)
{
	for (const Element &cel : ds.root.elems) {
		if (!cel.deferred)
			continue;
		if (!ds.src)
			fail(DIANA_ERROR, "deferred value without its source file");
		Element &el = const_cast<Element &>(cel);
		std::string v;
		v.reserve(el.src_len);
		read_source(*ds.src, el.src_off, el.src_len, [&v](const char *p, size_t n) { v.append(p, n); });
		el.value = std::move(v);
		el.deferred = false;
	}
}

char *write_part10(const Dataset &ds, size_t *len)
{
	Part10 p(ds);
	Buf o;
	o.reserve_total(estimated_size(ds.root.elems) + 4096);
	BufSink s(o);
	p.write(s);
	return o.detach(len);
}

} // namespace diana_dcm
