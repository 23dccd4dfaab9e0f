//! PLACEHOLDER until the real module lands.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub source: String,
    pub key: String,
}
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish()
    }
}
impl Credential {
    pub fn describe(&self) -> String {
        format!(
            "user \"{}\" from {} (auths key \"{}\")",
            self.username, self.source, self.key
        )
    }
}
#[derive(Debug, Default, Clone)]
pub struct DockerConfig {}
#[derive(Debug, thiserror::Error)]
#[error("bad docker config")]
pub struct CredentialError;
pub fn parse_docker_config(_b: &[u8]) -> Result<DockerConfig, CredentialError> {
    Ok(DockerConfig {})
}
#[derive(Debug, Default, Clone)]
pub struct Keyring {}
impl Keyring {
    pub fn add(&mut self, _c: &DockerConfig, _s: impl Into<String>) {}
    pub fn lookup(&self, _r: &str, _p: &str) -> Vec<Credential> {
        vec![]
    }
    pub fn keys(&self) -> Vec<(String, String)> {
        vec![]
    }
}
