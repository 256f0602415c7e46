// The admin client against a real Kafka broker (one node, started by scripts/test):
// every operation, and the typed error of each thing a user can get wrong.
#include <kcoro/consumer.hpp>
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::real_bootstrap;
using kcoro::test::describe_when_ready;
using kcoro::test::run_bounded;
using kcoro::test::sleep_for;
using kcoro::test::unique_topic;

namespace {

kcoro::config admin_config() { return {{"bootstrap.servers", real_bootstrap()}, {"log_level", "3"}}; }

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::optional<std::string> value_of(const std::vector<kcoro::config_entry>& entries, std::string_view name) {
    for (const auto& e : entries)
        if (e.name == name) return e.value;
    return std::nullopt;
}

const kcoro::config_entry* entry_of(const std::vector<kcoro::config_entry>& entries, std::string_view name) {
    for (const auto& e : entries)
        if (e.name == name) return &e;
    return nullptr;
}

} // namespace

TEST_SUITE("admin") {

TEST_CASE("create_topics creates, and reports per topic which failed and why") {
    const std::string fresh = unique_topic("adm-create");
    const std::string existing = unique_topic("adm-existing");
    const std::string too_wide = unique_topic("adm-wide");
    const std::string bad_config = unique_topic("adm-badcfg");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::new_topic first{.name = existing, .partitions = 1, .replication_factor = 1};
        co_await admin.create_topic(first);

        const std::vector<kcoro::new_topic> batch{
            {.name = fresh, .partitions = 3, .replication_factor = 1, .configs = {{"cleanup.policy", "compact"}}},
            {.name = existing, .partitions = 1},
            {.name = too_wide, .partitions = 1, .replication_factor = 3}, // one broker only
            {.name = bad_config, .partitions = 1, .configs = {{"cleanup.policy", "sideways"}}},
        };
        auto [ec, results] = co_await admin.create_topics(batch, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::topic_already_exists); // the first failure, in request order
        REQUIRE(results.size() == 4);
        CHECK(results[0].name == fresh);
        CHECK_FALSE(results[0].error);
        CHECK(results[1].error == kcoro::errc::topic_already_exists);
        CHECK(contains(results[1].message, existing));
        CHECK(results[2].error == kcoro::errc::invalid_replication_factor);
        CHECK_FALSE(results[2].message.empty());
        CHECK(results[3].error == kcoro::errc::invalid_config);

        // The awaitable form throws, naming every failed topic (and not the created one).
        const std::vector<kcoro::new_topic> again{{.name = existing, .partitions = 1},
                                                  {.name = too_wide, .partitions = 1, .replication_factor = 3}};
        try {
            co_await admin.create_topics(again);
            FAIL("create_topics with failures did not throw");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::topic_already_exists);
            CHECK(contains(e.what(), fmt::format("'{}'", existing)));
            CHECK(contains(e.what(), fmt::format("'{}'", too_wide)));
        }
        try {
            co_await admin.create_topic(first);
            FAIL("creating an existing topic succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::topic_already_exists);
            CHECK(contains(e.what(), fmt::format("create topic '{}'", existing)));
        }

        const kcoro::topic_description d = co_await describe_when_ready(admin, fresh);
        CHECK(d.name == fresh);
        REQUIRE(d.partitions.size() == 3);
        for (const auto& p : d.partitions) {
            CHECK(p.leader >= 0);
            CHECK(p.replicas == std::vector<std::int32_t>{p.leader});
            CHECK(p.in_sync == std::vector<std::int32_t>{p.leader});
        }
        const auto configs = co_await admin.describe_configs(kcoro::config_resource::topic(fresh));
        CHECK(value_of(configs, "cleanup.policy") == "compact");
    }, 120s);
}

TEST_CASE("describe_cluster and list_topics") {
    const std::string topic = unique_topic("adm-list");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::cluster_description d = co_await admin.describe_cluster();
        REQUIRE(d.brokers.size() == 1);
        CHECK(contains(real_bootstrap(), fmt::format(":{}", d.brokers[0].port)));
        CHECK(d.controller_id == d.brokers[0].id);
        CHECK_FALSE(d.cluster_id.empty());

        const kcoro::new_topic t{.name = topic, .partitions = 1};
        co_await admin.create_topic(t);
        const auto names = co_await admin.list_topics();
        CHECK(std::find(names.begin(), names.end(), topic) != names.end());
        CHECK(std::is_sorted(names.begin(), names.end()));

        // Asking about a topic never creates it, although the broker auto-creates topics.
        const std::string absent = unique_topic("adm-absent");
        try {
            co_await admin.describe_topic(absent);
            FAIL("describing a missing topic succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::unknown_topic_or_partition);
            CHECK(contains(e.what(), fmt::format("'{}'", absent)));
        }
        const auto after = co_await admin.list_topics();
        CHECK(std::find(after.begin(), after.end(), absent) == after.end());
    }, 120s);
}

TEST_CASE("create_partitions grows a topic; shrinking or an unknown topic is a typed error") {
    const std::string topic = unique_topic("adm-parts");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::new_topic t{.name = topic, .partitions = 2};
        co_await admin.create_topic(t);
        co_await admin.create_partitions(topic, 5);
        std::size_t seen = 0;
        for (int i = 0; i < 50 && seen != 5; ++i) { // metadata follows the controller shortly
            seen = (co_await describe_when_ready(admin, topic)).partitions.size();
            if (seen != 5) co_await sleep_for(100ms);
        }
        CHECK(seen == 5);
        try {
            co_await admin.create_partitions(topic, 3);
            FAIL("shrinking a topic succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_partitions);
            CHECK(contains(e.what(), fmt::format("'{}'", topic)));
        }
        const std::string absent = unique_topic("adm-absent");
        auto [ec] = co_await admin.create_partitions(absent, 3, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::unknown_topic_or_partition);
    }, 120s);
}

TEST_CASE("delete_topics deletes; an unknown topic is unknown_topic_or_partition") {
    const std::string topic = unique_topic("adm-delete");
    const std::string absent = unique_topic("adm-absent");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::new_topic t{.name = topic, .partitions = 1};
        co_await admin.create_topic(t);
        const std::vector<std::string> both{topic, absent};
        auto [ec, results] = co_await admin.delete_topics(both, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::unknown_topic_or_partition);
        REQUIRE(results.size() == 2);
        CHECK(results[0].name == topic);
        CHECK_FALSE(results[0].error);
        CHECK(results[1].error == kcoro::errc::unknown_topic_or_partition);
        try {
            co_await admin.delete_topic(absent);
            FAIL("deleting a missing topic succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::unknown_topic_or_partition);
            CHECK(contains(e.what(), fmt::format("'{}'", absent)));
        }
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {
            const auto names = co_await admin.list_topics();
            gone = std::find(names.begin(), names.end(), topic) == names.end();
            if (!gone) co_await sleep_for(100ms);
        }
        CHECK(gone);
    }, 120s);
}

TEST_CASE("describe_configs and alter_configs change only what is asked") {
    const std::string topic = unique_topic("adm-configs");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::new_topic t{.name = topic, .partitions = 1, .configs = {{"cleanup.policy", "compact"}}};
        co_await admin.create_topic(t);
        const auto resource = kcoro::config_resource::topic(topic);

        auto before = co_await admin.describe_configs(resource);
        const auto* retention = entry_of(before, "retention.ms");
        REQUIRE(retention != nullptr);
        CHECK(retention->source != kcoro::config_source::dynamic_topic);
        const auto* policy = entry_of(before, "cleanup.policy");
        REQUIRE(policy != nullptr);
        CHECK(policy->source == kcoro::config_source::dynamic_topic);

        const std::vector<kcoro::config_alteration> set{{"retention.ms", "3600000"}};
        co_await admin.alter_configs(resource, set);
        auto after = co_await admin.describe_configs(resource);
        CHECK(value_of(after, "retention.ms") == "3600000");
        CHECK(value_of(after, "cleanup.policy") == "compact"); // kept: the change is incremental

        const std::vector<kcoro::config_alteration> reset{{"retention.ms", std::nullopt}};
        co_await admin.alter_configs(resource, reset);
        auto reverted = co_await admin.describe_configs(resource);
        CHECK(entry_of(reverted, "retention.ms")->source != kcoro::config_source::dynamic_topic);
        CHECK(value_of(reverted, "cleanup.policy") == "compact");

        const std::vector<kcoro::config_alteration> bad{{"retention.ms", "soon"}};
        try {
            co_await admin.alter_configs(resource, bad);
            FAIL("an invalid config value was accepted");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_config);
            CHECK(contains(e.what(), fmt::format("topic '{}'", topic)));
        }
        const auto absent = kcoro::config_resource::topic(unique_topic("adm-absent"));
        auto [ec, entries] = co_await admin.describe_configs(absent, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::unknown_topic_or_partition);

        const auto broker = co_await admin.describe_configs(kcoro::config_resource::broker(1));
        CHECK(entry_of(broker, "log.retention.hours") != nullptr);
    }, 120s);
}

TEST_CASE("delete_records moves the low watermark; past the end is offset_out_of_range") {
    const std::string topic = unique_topic("adm-records");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    kcoro::producer producer(io, {{"bootstrap.servers", real_bootstrap()}, {"log_level", "3"}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::new_topic t{.name = topic, .partitions = 1};
        co_await admin.create_topic(t);
        std::vector<kcoro::record> records(10, kcoro::record{.topic = topic, .partition = 0, .value = "v"});
        std::vector<kcoro::delivery_report> reports(records.size());
        const std::size_t failed = co_await producer.send_batch(records, reports);
        REQUIRE(failed == 0);

        const std::vector<kcoro::partition_offset> before4{{topic, 0, 4}};
        auto deleted = co_await admin.delete_records(before4);
        REQUIRE(deleted.size() == 1);
        CHECK(deleted[0].low_watermark == 4);
        CHECK_FALSE(deleted[0].error);

        const std::vector<kcoro::partition_offset> past_end{{topic, 0, 100}};
        try {
            co_await admin.delete_records(past_end);
            FAIL("deleting past the end succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::offset_out_of_range);
            CHECK(contains(e.what(), fmt::format("'{}/0'", topic)));
        }
        const std::vector<kcoro::partition_offset> all{{topic, 0, kcoro::offsets::end}};
        auto everything = co_await admin.delete_records(all);
        CHECK(everything.at(0).low_watermark == 10);
    }, 120s);
}

TEST_CASE("consumer groups: list, describe, delete, and their typed errors") {
    const std::string topic = unique_topic("adm-groups");
    const std::string group = unique_topic("adm-group");
    const std::string absent = unique_topic("adm-nogroup");
    asio::io_context io;
    kcoro::admin admin(io, admin_config());
    kcoro::producer producer(io, {{"bootstrap.servers", real_bootstrap()}, {"log_level", "3"}});
    kcoro::consumer consumer(io, {{"bootstrap.servers", real_bootstrap()},
                                  {"group.id", group},
                                  {"client.id", "admin-test-member"},
                                  {"auto.offset.reset", "earliest"},
                                  {"log_level", "3"}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::new_topic t{.name = topic, .partitions = 2};
        co_await admin.create_topic(t);
        const kcoro::record r{.topic = topic, .partition = 0, .value = "v"};
        co_await producer.send(r);
        consumer.subscribe({topic});
        co_await consumer.receive(); // joined, partitions assigned
        co_await consumer.commit();

        const auto groups = co_await admin.list_consumer_groups();
        auto listed = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.group_id == group; });
        REQUIRE(listed != groups.end());
        CHECK(listed->state == kcoro::consumer_group_state::stable);
        CHECK_FALSE(listed->simple);

        const kcoro::consumer_group_description d = co_await admin.describe_consumer_group(group);
        CHECK(d.group_id == group);
        CHECK(d.state == kcoro::consumer_group_state::stable);
        CHECK_FALSE(d.partition_assignor.empty());
        CHECK(d.coordinator.id >= 0);
        REQUIRE(d.members.size() == 1);
        CHECK(d.members[0].client_id == "admin-test-member");
        CHECK_FALSE(d.members[0].member_id.empty());
        auto assigned = d.members[0].assignment;
        std::sort(assigned.begin(), assigned.end());
        CHECK(assigned == std::vector<kcoro::topic_partition>{{topic, 0}, {topic, 1}});

        // A group with members cannot be deleted.
        const std::vector<std::string> live{group};
        auto [ec, results] = co_await admin.delete_consumer_groups(live, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::non_empty_group);
        CHECK(results.at(0).error == kcoro::errc::non_empty_group);

        try {
            co_await admin.describe_consumer_group(absent);
            FAIL("describing a missing group succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::group_id_not_found);
            CHECK(contains(e.what(), fmt::format("'{}'", absent)));
        }

        co_await consumer.close();
        const kcoro::consumer_group_description empty = co_await admin.describe_consumer_group(group);
        CHECK(empty.state == kcoro::consumer_group_state::empty);
        CHECK(empty.members.empty());

        const std::vector<std::string> both{group, absent};
        auto [ec2, deleted] = co_await admin.delete_consumer_groups(both, asio::as_tuple(asio::use_awaitable));
        CHECK(ec2 == kcoro::errc::group_id_not_found);
        REQUIRE(deleted.size() == 2);
        CHECK_FALSE(deleted[0].error);
        CHECK(deleted[1].error == kcoro::errc::group_id_not_found);
        try {
            co_await admin.delete_consumer_groups(live);
            FAIL("deleting a deleted group succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::group_id_not_found);
            CHECK(contains(e.what(), fmt::format("'{}'", group)));
        }
    }, 120s);
}

} // TEST_SUITE
