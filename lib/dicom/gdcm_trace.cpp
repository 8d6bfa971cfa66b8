/*
 * libdiana - GDCM's trace streams.
 *
 * GDCM writes diagnostics to std::cerr by itself, and reports the defects it
 * repairs while reading (lengths it changes, bytes it skips) on its warning
 * and error streams only. libdiana routes all of its trace streams through
 * one streambuf that
 *  - forwards each line to the libdiana log (debug level, domain "gdcm"),
 *  - counts, per thread, the warnings, errors and failed assertions GDCM
 *    reports, and keeps the message line of the first one, so that the
 *    reader can refuse a file GDCM had to repair (see dsread.cpp).
 * GDCM's macros format a whole message and write it on the thread that runs
 * GDCM's code, so a thread-local line buffer and capture are exact.
 * SPDX-License-Identifier: MIT
 */
#include <cstring>
#include <mutex>
#include <ostream>
#include <streambuf>
#include <string>

#include <gdcmTrace.h>

#include "../core/core.h"
#include "dicom.h"
#include "dsmodel.h"

namespace {

struct ThreadTrace {
	std::string line;           /* line being assembled */
	bool want_message = false;  /* the next non-empty line is a message text */
	diana_dcm::TraceCapture cap;
};

thread_local ThreadTrace t_trace;

bool starts_with(const std::string &s, const char *p)
{
	return s.compare(0, strlen(p), p) == 0;
}

/* one line of GDCM output: log it, and feed the capture */
void on_line(ThreadTrace &t, int level)
{
	const std::string &l = t.line;
	if (!l.empty())
		diana__log(level, "gdcm", "%s", l.c_str());
	/* "Warning: In <file>, line <n>, function <f>" then the message lines,
	 * then an empty line; "Assert: In ..." has no message line */
	if (starts_with(l, "Warning: In ") || starts_with(l, "Error: In ")) {
		t.cap.count++;
		t.want_message = t.cap.first.empty();
	} else if (starts_with(l, "Assert: In ")) {
		t.cap.count++;
		if (t.cap.first.empty())
			t.cap.first = "internal consistency check failed";
		t.want_message = false;
	} else if (starts_with(l, "Debug: In ")) {
		t.want_message = false;
	} else if (t.want_message && !l.empty()) {
		/* the message line only, printable ASCII, bounded; a duplicate
		 * element is reported with its value: keep the words only */
		std::string m;
		if (starts_with(l, "DataElement: ")) {
			m = "duplicate element skipped";
		} else {
			for (char c : l)
				if (c >= 0x20 && c < 0x7F && m.size() < 120)
					m.push_back(c);
		}
		t.cap.first = m.empty() ? std::string("(no text)") : m;
		t.want_message = false;
	}
	t.line.clear();
}

class LogBuf : public std::streambuf {
public:
	explicit LogBuf(int level) : level_(level) {}

protected:
	int_type overflow(int_type ch) override
	{
		if (ch == traits_type::eof())
			return traits_type::not_eof(ch);
		put(static_cast<char>(ch));
		return ch;
	}

	std::streamsize xsputn(const char *s, std::streamsize n) override
	{
		for (std::streamsize i = 0; i < n; i++)
			put(s[i]);
		return n;
	}

	int sync() override
	{
		ThreadTrace &t = t_trace;
		if (!t.line.empty())
			on_line(t, level_);
		return 0;
	}

private:
	void put(char c)
	{
		ThreadTrace &t = t_trace;
		if (c == '\n')
			on_line(t, level_);
		else if (t.line.size() < 4096)
			t.line.push_back(c);
	}

	int level_;
};

std::once_flag g_once;
LogBuf *g_buf;
std::ostream *g_stream;

void route()
{
	gdcm::Trace::SetStream(*g_stream);
	gdcm::Trace::SetDebugStream(*g_stream);
	gdcm::Trace::SetWarningStream(*g_stream);
	gdcm::Trace::SetErrorStream(*g_stream);
	gdcm::Trace::DebugOff();
	gdcm::Trace::WarningOn();
	gdcm::Trace::ErrorOn();
}

} // namespace

namespace diana_dcm {

void trace_install()
{
	std::call_once(g_once, [] {
		/* never freed: GDCM keeps a reference for the life of the process */
		g_buf = new LogBuf(DIANA_LOG_DEBUG);
		g_stream = new std::ostream(g_buf);
		route();
	});
	/* GDCM's trace settings are process-wide: if something turned warnings
	 * off or took the streams, the reader would be blind to GDCM's repairs */
	if (!gdcm::Trace::GetWarningFlag() || !gdcm::Trace::GetErrorFlag() ||
	    &gdcm::Trace::GetWarningStream() != g_stream || &gdcm::Trace::GetErrorStream() != g_stream)
		route();
}

const TraceCapture &trace_current()
{
	return t_trace.cap;
}

TraceCapture trace_swap(TraceCapture c)
{
	TraceCapture old = std::move(t_trace.cap);
	t_trace.cap = std::move(c);
	t_trace.want_message = false;
	return old;
}

} // namespace diana_dcm

extern "C" int diana__dicom_global_init(void) noexcept
{
	try {
		diana_dcm::trace_install();
		return 0;
	} catch (...) {
		return diana__error_oom();
	}
}

extern "C" void diana__dicom_global_shutdown(void) noexcept
{
	/* The routing stays: GDCM's streams are process-wide and the reader
	 * depends on seeing its warnings, also after diana_shutdown() (the
	 * dataset functions work without diana_init()). Without a log handler
	 * the lines go nowhere. */
	try {
		if (g_stream)
			g_stream->flush();
	} catch (...) {
	}
}
