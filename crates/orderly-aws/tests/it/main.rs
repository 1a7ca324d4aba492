//! The integration tests of `orderly-aws`: one test binary, a module per area.

mod dynamo_contract;
mod messaging;
mod sfn_conformance;
mod sqs_contract;
mod streams;
