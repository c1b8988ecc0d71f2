//! The ACME account: stored credentials (in the fleet store when there is one, else in the
//! storage folder), or a new account that is then stored.

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

use super::fleet::Fleet;
use super::storage::Storage;
use crate::config::AcmeOptions;

/// The account for `options.directory`.
pub(super) async fn load_or_create(
    options: &AcmeOptions,
    fleet: Option<&Fleet>,
) -> Result<Account, String> {
    let storage = Storage::new(&options.storage);
    let builder = || match &options.directory_ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    };
    let stored = match fleet {
        Some(fleet) => fleet
            .account(&options.directory)
            .await
            .map_err(|e| format!("cannot read the ACME account from the fleet store: {e}"))?,
        None => storage
            .account(&options.directory)
            .map_err(|e| format!("cannot read the ACME account: {e}"))?,
    };
    if let Some(credentials) = stored {
        return from_credentials(builder, credentials).await;
    }
    let contact: Vec<&str> = options.contact.iter().map(String::as_str).collect();
    let eab = options
        .eab
        .as_ref()
        .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
    let (account, credentials) = builder()
        .map_err(|e| format!("ACME client: {e}"))?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            options.directory.clone(),
            eab.as_ref(),
        )
        .await
        .map_err(|e| {
            format!(
                "cannot create the ACME account at {}: {e}",
                options.directory
            )
        })?;
    tracing::info!(directory = %options.directory, id = account.id(), "ACME account created");
    match fleet {
        Some(fleet) => {
            let ours = account.id().to_owned();
            let kept = fleet
                .save_account(&options.directory, credentials)
                .await
                .map_err(|e| format!("cannot store the ACME account in the fleet store: {e}"))?;
            let kept = from_credentials(builder, kept).await?;
            if kept.id() != ours {
                tracing::info!(
                    id = kept.id(),
                    "another process of the fleet stored its account first; using that one"
                );
            }
            Ok(kept)
        }
        None => {
            storage
                .save_account(&options.directory, &credentials)
                .map_err(|e| format!("cannot store the ACME account: {e}"))?;
            Ok(account)
        }
    }
}

async fn from_credentials(
    builder: impl Fn() -> Result<instant_acme::AccountBuilder, instant_acme::Error>,
    credentials: AccountCredentials,
) -> Result<Account, String> {
    builder()
        .map_err(|e| format!("ACME client: {e}"))?
        .from_credentials(credentials)
        .await
        .map_err(|e| format!("ACME account: {e}"))
}

/// The certificate profiles `options.directory` lists, read from the directory now without an
/// account (for `tlsplex check`); bounded by `limit`.
pub async fn offered_profiles(
    options: &AcmeOptions,
    limit: std::time::Duration,
) -> Result<Vec<String>, String> {
    let read = async {
        let builder = match &options.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|e| format!("ACME client: {e}"))?;
        // A throwaway key: reading the directory needs no account.
        let (_, key) =
            instant_acme::Key::generate_pkcs8().map_err(|e| format!("ACME client: {e}"))?;
        let directory = builder
            .from_parts(String::new(), key, options.directory.clone())
            .await
            .map_err(|e| format!("cannot read the directory {}: {e}", options.directory))?;
        Ok(directory.profiles().map(|p| p.name.to_owned()).collect())
    };
    tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
        Err(format!(
            "the directory {} did not answer within {}s",
            options.directory,
            limit.as_secs()
        ))
    })
}
