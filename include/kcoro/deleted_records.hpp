// kcoro: the outcome of admin::delete_records() for one partition.
#pragma once

#include <kcoro/error.hpp>

#include <cstdint>
#include <string>

namespace kcoro {

struct deleted_records {
    std::string topic{};
    std::int32_t partition = 0;
    std::int64_t low_watermark = -1; ///< the partition's first offset now; -1 on error
    error_code error{};              ///< e.g. errc::offset_out_of_range
};

} // namespace kcoro
