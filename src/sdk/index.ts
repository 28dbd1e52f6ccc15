/** The ami-streams agent SDK: `import { createAgent } from "ami-streams/src/sdk/index.ts"`. */
export {
  Agent,
  type AgentMessage,
  type AgentOptions,
  type CreateRoomOptions,
  createAgent,
  type SendOptions,
} from "./agent.ts";
