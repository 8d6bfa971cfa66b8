/*
 * libdiana - in-memory model of a DICOM dataset (lib/dicom internal, C++).
 *
 * The dataset is a tree of elements. GDCM reads files into a gdcm::DataSet
 * that dsread.cpp checks and converts into this tree; dswrite.cpp converts
 * the tree back into a gdcm::DataSet that GDCM encodes. The tree is what
 * get/foreach (dataset.cpp) and DICOM JSON (dsjson.cpp) work on. GDCM also
 * supplies the data dictionary (dsdict.cpp).
 *
 * Invariants kept by every producer of the tree:
 *  - elements of an item are sorted by tag, without duplicates;
 *  - `vr` is always a standard two-letter VR (implicit datasets get it from
 *    the dictionary, "UN" when unknown);
 *  - values of binary VRs are stored little endian whatever the encoding;
 *  - a sequence element has vr == SQ and its items in `items`;
 *  - encapsulated Pixel Data has `encapsulated` set and its items in
 *    `frags` (frags[0] is the Basic Offset Table, possibly empty).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DSMODEL_H
#define DIANA_DSMODEL_H

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace diana_dcm {

constexpr uint16_t vr2(char a, char b)
{
	return static_cast<uint16_t>((static_cast<uint8_t>(a) << 8) | static_cast<uint8_t>(b));
}

constexpr uint16_t VR_AE = vr2('A', 'E');
constexpr uint16_t VR_AS = vr2('A', 'S');
constexpr uint16_t VR_AT = vr2('A', 'T');
constexpr uint16_t VR_CS = vr2('C', 'S');
constexpr uint16_t VR_DA = vr2('D', 'A');
constexpr uint16_t VR_DS = vr2('D', 'S');
constexpr uint16_t VR_DT = vr2('D', 'T');
constexpr uint16_t VR_FD = vr2('F', 'D');
constexpr uint16_t VR_FL = vr2('F', 'L');
constexpr uint16_t VR_IS = vr2('I', 'S');
constexpr uint16_t VR_LO = vr2('L', 'O');
constexpr uint16_t VR_LT = vr2('L', 'T');
constexpr uint16_t VR_OB = vr2('O', 'B');
constexpr uint16_t VR_OD = vr2('O', 'D');
constexpr uint16_t VR_OF = vr2('O', 'F');
constexpr uint16_t VR_OL = vr2('O', 'L');
constexpr uint16_t VR_OV = vr2('O', 'V');
constexpr uint16_t VR_OW = vr2('O', 'W');
constexpr uint16_t VR_PN = vr2('P', 'N');
constexpr uint16_t VR_SH = vr2('S', 'H');
constexpr uint16_t VR_SL = vr2('S', 'L');
constexpr uint16_t VR_SQ = vr2('S', 'Q');
constexpr uint16_t VR_SS = vr2('S', 'S');
constexpr uint16_t VR_ST = vr2('S', 'T');
constexpr uint16_t VR_SV = vr2('S', 'V');
constexpr uint16_t VR_TM = vr2('T', 'M');
constexpr uint16_t VR_UC = vr2('U', 'C');
constexpr uint16_t VR_UI = vr2('U', 'I');
constexpr uint16_t VR_UL = vr2('U', 'L');
constexpr uint16_t VR_UN = vr2('U', 'N');
constexpr uint16_t VR_UR = vr2('U', 'R');
constexpr uint16_t VR_US = vr2('U', 'S');
constexpr uint16_t VR_UT = vr2('U', 'T');
constexpr uint16_t VR_UV = vr2('U', 'V');

constexpr uint32_t TAG_ITEM = 0xFFFEE000u;
constexpr uint32_t TAG_ITEM_DELIM = 0xFFFEE00Du;
constexpr uint32_t TAG_SEQ_DELIM = 0xFFFEE0DDu;
constexpr uint32_t TAG_PIXEL_DATA = 0x7FE00010u;
constexpr uint32_t TAG_CHARSET = 0x00080005u;
constexpr uint32_t UNDEFINED_LENGTH = 0xFFFFFFFFu;

constexpr const char *TS_IMPLICIT_LE = "1.2.840.10008.1.2";
constexpr const char *TS_EXPLICIT_LE = "1.2.840.10008.1.2.1";
constexpr const char *TS_DEFLATED_LE = "1.2.840.10008.1.2.1.99";
constexpr const char *TS_EXPLICIT_BE = "1.2.840.10008.1.2.2";

/** Byte-level encoding of the dataset (after the file meta group). */
enum class Encoding { ExplicitLE, ImplicitLE, ExplicitBE, DeflatedLE };

struct Item;

/*
 * The input file a dataset was read from, kept open while values stay in it
 * (deferred top-level Pixel Data, see ParseOptions::defer_pixels). Shared by
 * the copies of a dataset; the descriptor is closed with the last one.
 */
struct SourceFile {
	int fd = -1;
	uint64_t size = 0; /* when read: a file that changed size since is refused */
	SourceFile(int f, uint64_t n) : fd(f), size(n) {}
	~SourceFile();
	SourceFile(const SourceFile &) = delete;
	SourceFile &operator=(const SourceFile &) = delete;
};

struct Element {
	uint32_t tag = 0;
	uint16_t vr = VR_UN;
	bool undef_len = false;    /* SQ / encapsulated pixel data had undefined length */
	bool encapsulated = false; /* Pixel Data as fragments */
	bool deferred = false;     /* the value is still in the source file: src_len bytes at src_off
	                              (value is empty); load_deferred() reads it */
	uint32_t sq_len = 0;       /* defined length of a sequence as read */
	uint64_t src_off = 0;
	uint32_t src_len = 0;
	std::string value;         /* raw value bytes (binary VRs little endian) */
	std::vector<Item> items;   /* SQ items */
	std::vector<std::string> frags; /* encapsulated: offset table then fragments */

	/** Length of the value, deferred or not. */
	size_t length() const { return deferred ? src_len : value.size(); }
};

struct Item {
	std::vector<Element> elems; /* sorted by tag */
	bool undef_len = false;

	const Element *find(uint32_t tag) const;
	Element *find(uint32_t tag);
	/** Insert keeping the order; returns false on a duplicate tag. */
	bool insert(Element &&el);
};

struct Dataset {
	std::vector<Element> meta; /* group 0002, sorted */
	Item root;
	std::string ts;            /* transfer syntax UID used for the dataset */
	Encoding enc = Encoding::ExplicitLE;
	bool has_meta = false;     /* a file meta group was read */
	bool lenient = false;      /* may hold invalid IS/DS/UI values */
	bool pixels_skipped = false; /* reading stopped before Pixel Data */
	std::shared_ptr<SourceFile> src; /* set when a value is deferred */

	const Element *find_meta(uint32_t tag) const;
};

/** Error carrying a libdiana code and a one-line message (no element values). */
class Error : public std::runtime_error {
public:
	Error(int code, const std::string &msg) : std::runtime_error(msg), code_(code) {}
	int code() const noexcept { return code_; }

private:
	int code_;
};

[[noreturn]] void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- VR helpers (dsdict.cpp) ---------------------------------------------- */

bool vr_known(uint16_t vr);
/** VRs with a 2-byte reserved field and a 4-byte length in explicit VR. */
bool vr_long_form(uint16_t vr);
/** Size of one binary number for US/SS/UL/SL/FL/FD/UV/SV/AT/OW/OF/OL/OD/OV, else 0/1. */
unsigned vr_word_size(uint16_t vr);
bool vr_is_string(uint16_t vr);   /* character string VRs (AE..UT, not SQ/binary) */
bool vr_is_binary(uint16_t vr);   /* OB OD OF OL OV OW UN */
bool vr_is_numeric(uint16_t vr);  /* US SS UL SL UV SV FL FD */
bool vr_multi_valued(uint16_t vr);/* string VRs that use '\' as a delimiter */
bool vr_charset_text(uint16_t vr);/* SH LO ST LT PN UC UT */
std::string vr_str(uint16_t vr);

/** VR of `tag` from the dictionary for implicit VR data; `pixel_rep` resolves US/SS. */
uint16_t dict_vr(uint32_t tag, int pixel_rep);
/** Dictionary keyword, "" for private, group length or unknown tags. */
const char *dict_keyword(uint32_t tag);
/** Tag of a keyword; false if unknown. */
bool dict_lookup(const char *keyword, uint32_t *tag);

/* --- values (dsvalue.cpp) ---------------------------------------------------- */

/** Split on '\'. */
std::vector<std::string> split_values(const std::string &s);
/** Trim padding of one value as the standard allows for `vr`. */
std::string trim_value(const std::string &v, uint16_t vr);
bool valid_is(const std::string &v); /* one value, untrimmed */
bool valid_ds(const std::string &v);
bool valid_ui(const std::string &v);
bool valid_utf8(const char *s, size_t n);
/** Text of a string-VR element as UTF-8 (charset conversion as needed). */
std::string element_text(const Element &el, const char *charset);
/** Text of a numeric binary element or AT, values joined by '\'. */
std::string element_numbers_text(const Element &el);
std::string fmt_double(double v);
std::string fmt_float(float v);
/** Raw charset value of an item, or nullptr when the item has none. */
const char *item_charset(const Item &it, std::string &storage);

/* --- parsing and writing --------------------------------------------------- */

struct ParseOptions {
	bool lenient = false;
	bool skip_pixels = false;
	/* parse_file only: native top-level Pixel Data of a little endian
	 * dataset stays in the file (Element::deferred); the caller keeps the
	 * file open in Dataset::src. Writing copies it from there (in the
	 * kernel where it can: copy_file_range), and any other use of the value
	 * reads it first (load_deferred). */
	bool defer_pixels = false;
	uint64_t max_inflated = 0; /* 0 = no limit */
};

/** Parse an input held in memory (Part 10 file or raw dataset). Throws Error. */
void parse_memory(const uint8_t *data, size_t len, const ParseOptions &opts, Dataset &out);

/** Parse an open file of `size` bytes, read as GDCM asks for bytes (with
 *  skip_pixels, nothing after the start of Pixel Data is read). Throws Error. */
void parse_file(int fd, uint64_t size, const ParseOptions &opts, Dataset &out);

/** Where write_part10() puts its bytes (in chunks). May throw Error. */
class Sink {
public:
	virtual ~Sink() = default;
	virtual void write(const char *p, size_t n) = 0;
	/** `len` bytes at `off` of a source file (a deferred value); by
	 *  default read in chunks and written. Throws Error. */
	virtual void copy(const SourceFile &src, uint64_t off, uint64_t len);
};

/** Read the deferred values of `ds` into memory (a no-op without any).
 *  The dataset is logically const: not to be called by two threads at once
 *  on one dataset (datasets with deferred values are internal to lib/deid's
 *  use). Throws Error. */
void load_deferred(const Dataset &ds);

/** Append `len` bytes at `off` of `src` to the file `out_fd` (at its
 *  offset): copy_file_range, else read and write. Throws Error (EIO when
 *  the source changed size or ended early). */
void copy_source_to_fd(const SourceFile &src, uint64_t off, uint64_t len, int out_fd);

/** A dataset as GDCM will encode it (dswrite.cpp). The constructor finds
 *  what cannot be encoded (throws Error) before anything is written. */
class Part10 {
public:
	explicit Part10(const Dataset &ds);
	~Part10();
	Part10(const Part10 &) = delete;
	Part10 &operator=(const Part10 &) = delete;
	/** Write the file (preamble, file meta, dataset). Throws Error. */
	void write(Sink &out) const;

private:
	struct Impl;
	Impl *impl_;
};

/** Serialise as a Part 10 file into a malloc'd buffer (caller frees). Throws Error. */
char *write_part10(const Dataset &ds, size_t *len);

/** Complete file meta for writing (group length left for the writer). Throws Error. */
std::vector<Element> build_meta(const Dataset &ds);

/** Classify a transfer syntax UID; false for one we cannot encode. */
bool ts_encoding(const std::string &uid, Encoding *enc);

/* --- GDCM's trace streams (gdcm_trace.cpp) ---------------------------------- */

/** What GDCM reported on this thread: warnings, errors and failed
 *  assertions (count), and the message line of the first (no source file,
 *  no function, printable ASCII, at most 120 bytes). */
struct TraceCapture {
	unsigned long count = 0;
	std::string first;
};

/** Route GDCM's trace streams into the libdiana log and the capture.
 *  Idempotent and thread-safe (std::call_once); also re-routes them if
 *  something changed GDCM's process-wide trace settings since. */
void trace_install();

/** This thread's capture. */
const TraceCapture &trace_current();

/** Install `c` as this thread's capture and return the previous one:
 *  `TraceCapture saved = trace_swap({}); ...; TraceCapture mine = trace_swap(saved);` */
TraceCapture trace_swap(TraceCapture c);

/* --- JSON (dsjson.cpp) -------------------------------------------------------- */

/** Export as DICOM JSON into a malloc'd NUL-terminated buffer. Throws Error. */
char *to_json(const Dataset &ds, uint32_t flags, size_t *len);
void from_json(const char *json, size_t len, Dataset &out);

/* --- byte helpers ---------------------------------------------------------- */

inline uint16_t le16(const uint8_t *p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t le32(const uint8_t *p)
{
	return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
	       (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline uint16_t be16(const uint8_t *p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t be32(const uint8_t *p)
{
	return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
	       (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}
/** Growable malloc'd byte buffer; throws std::bad_alloc. */
class Buf {
public:
	Buf() = default;
	Buf(const Buf &) = delete;
	Buf &operator=(const Buf &) = delete;
	~Buf() { free(d_); }

	size_t size() const { return n_; }
	char *data() { return d_; }

	void reserve(size_t extra)
	{
		if (extra > SIZE_MAX - n_)
			throw std::bad_alloc();
		if (n_ + extra <= cap_)
			return;
		size_t c = cap_ ? cap_ : 4096;
		while (c < n_ + extra) {
			if (c > SIZE_MAX / 2) {
				c = n_ + extra;
				break;
			}
			c *= 2;
		}
		char *p = static_cast<char *>(realloc(d_, c));
		if (!p)
			throw std::bad_alloc();
		d_ = p;
		cap_ = c;
	}
	/** Make room for `total` bytes in all, exactly (no doubling). */
	void reserve_total(size_t total)
	{
		if (total <= cap_)
			return;
		char *p = static_cast<char *>(realloc(d_, total));
		if (!p)
			throw std::bad_alloc();
		d_ = p;
		cap_ = total;
	}
	void put(const void *p, size_t len)
	{
		if (!len)
			return;
		reserve(len);
		memcpy(d_ + n_, p, len);
		n_ += len;
	}
	void putc(char c) { put(&c, 1); }
	void puts(const char *s) { put(s, strlen(s)); }
	void append(const std::string &s) { put(s.data(), s.size()); }
	void u16(uint16_t v, bool be)
	{
		uint8_t b[2];
		if (be) {
			b[0] = static_cast<uint8_t>(v >> 8);
			b[1] = static_cast<uint8_t>(v);
		} else {
			b[0] = static_cast<uint8_t>(v);
			b[1] = static_cast<uint8_t>(v >> 8);
		}
		put(b, 2);
	}
	void u32(uint32_t v, bool be)
	{
		if (be) {
			u16(static_cast<uint16_t>(v >> 16), true);
			u16(static_cast<uint16_t>(v), true);
		} else {
			u16(static_cast<uint16_t>(v), false);
			u16(static_cast<uint16_t>(v >> 16), false);
		}
	}
	void patch32(size_t at, uint32_t v, bool be)
	{
		for (int i = 0; i < 4; i++)
			d_[at + static_cast<size_t>(i)] =
			    static_cast<char>(be ? (v >> (24 - 8 * i)) : (v >> (8 * i)));
	}
	char *detach(size_t *len)
	{
		reserve(1);
		d_[n_] = 0;
		char *p = d_;
		*len = n_;
		d_ = nullptr;
		n_ = cap_ = 0;
		return p;
	}

private:
	char *d_ = nullptr;
	size_t n_ = 0, cap_ = 0;
};

/** Decode a little-endian number of type T (host byte order independent). */
template <typename T> inline T load_le(const char *p)
{
	static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "word size");
	uint64_t u = 0;
	for (size_t i = 0; i < sizeof(T); i++)
		u |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
	T v;
	if (sizeof(T) == 2) {
		uint16_t w = static_cast<uint16_t>(u);
		memcpy(&v, &w, sizeof v);
	} else if (sizeof(T) == 4) {
		uint32_t w = static_cast<uint32_t>(u);
		memcpy(&v, &w, sizeof v);
	} else {
		memcpy(&v, &u, sizeof v);
	}
	return v;
}

/** Encode a number of type T little endian. */
template <typename T> inline void store_le(std::string &out, T v)
{
	uint64_t u = 0;
	if (sizeof(T) == 2) {
		uint16_t w;
		memcpy(&w, &v, sizeof w);
		u = w;
	} else if (sizeof(T) == 4) {
		uint32_t w;
		memcpy(&w, &v, sizeof w);
		u = w;
	} else {
		memcpy(&u, &v, sizeof u);
	}
	for (size_t i = 0; i < sizeof(T); i++)
		out.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}

/** Reverse each `size`-byte word of `s` in place (size 2, 4 or 8). */
void swap_words(std::string &s, unsigned size);

} // namespace diana_dcm


/* The public handle wraps the model (one definition for every lib/dicom file). */
struct diana_dataset {
	diana_dcm::Dataset d;
};

/* Catch-all for extern "C" entry points: no exception crosses the C boundary. */
#define DIANA_CATCH_ALL                                                                      \
	catch (const diana_dcm::Error &e)                                                        \
	{                                                                                        \
		return diana__error_set(e.code(), "%s", e.what());                                   \
	}                                                                                        \
	catch (const std::bad_alloc &)                                                           \
	{                                                                                        \
		return diana__error_oom();                                                           \
	}                                                                                        \
	catch (const std::exception &e)                                                          \
	{                                                                                        \
		return diana__error_set(DIANA_EDICOM, "%s", e.what());                               \
	}                                                                                        \
	catch (...)                                                                              \
	{                                                                                        \
		return diana__error_set(DIANA_ERROR, "unexpected internal error");                   \
	}

#endif /* DIANA_DSMODEL_H */
