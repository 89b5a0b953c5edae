export {
  AlarmcastClient,
  compareIds,
  type AlarmcastClientOptions,
  type AlarmEvent,
  type AlarmEventType,
  type Alarm,
  type ConnectionState,
} from './client.js';
