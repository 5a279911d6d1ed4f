// TEMPORARY placeholder until the fjall backend lands.
use super::*;
pub struct FjallStore;
impl FjallStore {
    pub fn open(_d: &std::path::Path, _f: bool) -> StoreResult<Self> {
        Ok(FjallStore)
    }
}
#[async_trait]
impl Store for FjallStore {
    async fn get(&self, _key: &Key) -> StoreResult<Option<Entry>> {
        Ok(None)
    }
    async fn list(&self, _prefix: &Key, _o: ListOptions) -> StoreResult<Vec<Entry>> {
        Ok(vec![])
    }
    async fn commit(&self, _w: AtomicWrite) -> StoreResult<CommitOutcome> {
        Ok(CommitOutcome::Committed(Versionstamp::from_counter(1)))
    }
    fn watch(&self, _p: &Key) -> WatchStream {
        Box::pin(futures_util::stream::empty())
    }
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}
