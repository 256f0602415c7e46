// kcoro: fmt, as every kcoro header includes it.
#pragma once

// GCC 12 at -O2 and above warns, in every file that formats a string with format specs,
// that fmt 9's fill_t::operator= writes past its array (-Wstringop-overflow). It is a false
// positive (the loop is bounded by the fill's size; MusicPlayerDaemon/MPD#1536 reports the
// same), and GCC judges it by the location inside fmt's header, so silencing it around the
// include keeps release builds of kcoro, and of programs including kcoro first, clean.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/format.h>
#pragma GCC diagnostic pop
#else
#include <fmt/format.h>
#endif
