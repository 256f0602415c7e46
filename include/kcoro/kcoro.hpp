// kcoro: C++20 coroutines for Apache Kafka, on librdkafka and Boost.Asio.
#pragma once

#include <kcoro/admin.hpp>
#include <kcoro/async_operation.hpp>
#include <kcoro/config.hpp>
#include <kcoro/consumer.hpp>
#include <kcoro/delivery.hpp>
#include <kcoro/delivery_report.hpp>
#include <kcoro/error.hpp>
#include <kcoro/message.hpp>
#include <kcoro/mock_cluster.hpp>
#include <kcoro/producer.hpp>
#include <kcoro/producer_options.hpp>
#include <kcoro/record.hpp>
#include <kcoro/record_metadata.hpp>
#include <kcoro/topic_partition.hpp>
#include <kcoro/transaction.hpp>
