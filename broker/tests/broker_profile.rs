//! How broker profiles are named on command lines and in errors (`--broker-profile`).

use idempo_broker::{BrokerProfile, UnknownBrokerProfile};

#[test]
fn a_profile_prints_as_the_name_it_is_parsed_from() {
    for profile in BrokerProfile::ALL {
        let printed = profile.to_string();
        assert_eq!(printed, profile.name());
        assert_eq!(printed.parse::<BrokerProfile>(), Ok(profile));
    }
}

#[test]
fn an_unknown_profile_error_names_the_input_and_every_profile() {
    let error = "kafka-9"
        .parse::<BrokerProfile>()
        .expect_err("no such profile");
    assert_eq!(error, UnknownBrokerProfile("kafka-9".into()));
    let message = error.to_string();
    assert!(message.contains("\"kafka-9\""), "{message}");
    for profile in BrokerProfile::ALL {
        assert!(
            message.contains(profile.name()),
            "{message} lacks {profile}"
        );
    }
}
