// Interned topic names: record_metadata refers to them by string_view, valid for the
// life of the program, so delivery reports need not copy a name per record.
#pragma once

#include <string_view>

namespace kcoro::detail {

/// The program-lifetime copy of `name` (one per distinct name).
std::string_view intern_topic_name(std::string_view name);

} // namespace kcoro::detail
