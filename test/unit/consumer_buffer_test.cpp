// The consumer's local buffer on its own: a ring whose indices wrap with a mask. Few
// consumer tests fetch enough to wrap it, so its order is checked here directly. Error
// entries stand for messages: their contexts number them.
#include "../../lib/detail/consumer_buffer.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using kcoro::detail::buffered;
using kcoro::detail::buffered_error;
using kcoro::detail::consumer_buffer;

namespace {

buffered entry(int i) {
    return buffered{{}, std::make_unique<buffered_error>(buffered_error{{}, std::to_string(i)})};
}

int number(const buffered& b) { return std::stoi(b.error->context); }

std::vector<int> contents(const consumer_buffer& buffer) {
    std::vector<int> out;
    buffer.for_each([&](const buffered& b) { out.push_back(number(b)); });
    return out;
}

} // namespace

TEST_CASE("consumer_buffer: keeps its order across wrap-arounds, at both ends and through growth") {
    consumer_buffer buffer(5);
    CHECK(buffer.capacity() == 8); // rounded up to a power of two

    SUBCASE("first in, first out, many times round") {
        int next_in = 0, next_out = 0;
        for (int round = 0; round < 10; ++round) {
            for (int k = 0; k < 5; ++k) buffer.push_back(entry(next_in++));
            for (int k = 0; k < 3; ++k) CHECK(number(buffer.pop_front()) == next_out++);
            CHECK(number(buffer.front()) == next_out);
            CHECK(number(buffer.back()) == next_in - 1);
            const auto moved = std::move(buffer.front().error); // as try_receive_now() does
            buffer.drop_front();
            ++next_out;
            buffer.pop_front();
            ++next_out;
            CHECK(buffer.empty());
        }
        CHECK(buffer.capacity() == 8);
    }

    SUBCASE("push_front from slot 0 goes round to the last slot") {
        buffer.push_back(entry(1));
        buffer.push_front(entry(0));
        buffer.push_back(entry(2));
        CHECK(contents(buffer) == std::vector<int>{0, 1, 2});
        CHECK(number(buffer.back()) == 2);
    }

    SUBCASE("growth keeps a wrapped ring in order") {
        for (int i = 0; i < 6; ++i) buffer.push_back(entry(i));
        for (int i = 0; i < 4; ++i) buffer.pop_front(); // head at 4: the next pushes wrap
        for (int i = 6; i < 12; ++i) buffer.push_back(entry(i));
        CHECK(buffer.size() == 8);
        buffer.push_front(entry(3)); // full: grows
        buffer.push_back(entry(12));
        CHECK(buffer.capacity() == 16);
        CHECK(contents(buffer) == std::vector<int>{3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    }

    SUBCASE("remove_if keeps the rest in order") {
        for (int i = 0; i < 6; ++i) buffer.push_back(entry(i));
        for (int i = 0; i < 5; ++i) buffer.pop_front();
        for (int i = 6; i < 12; ++i) buffer.push_back(entry(i)); // wrapped: 5..11
        std::vector<buffered> removed;
        buffer.remove_if([](const buffered& b) { return number(b) % 2 == 0; }, removed);
        CHECK(contents(buffer) == std::vector<int>{5, 7, 9, 11});
        REQUIRE(removed.size() == 3);
        CHECK(number(removed[0]) == 6);
        CHECK(number(removed[2]) == 10);
    }
}
